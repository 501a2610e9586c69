// A gradient method in 30 lines: hard pseudo-labels (Lee, 2013) on the confident samples of each
// batch, training only the BatchNorm affine parameters (TENT's trainable set, another loss).
// Run: npx ctta run fmnist-c-continual --plugin examples/pseudo-label.js --methods source,pseudo-label
// It imports nothing: ctta hands the library (with its tfjs and zod) to the default export, so
// the file works from any folder.
export default ({ tf, z, GradientMethod, registerMethod }) => {
  class PseudoLabel extends GradientMethod {
    async setup() { this.network.setNormStatistics('batch'); }
    trainable() { return this.network.normAffineVariables(); }
    optimizers() { return { kind: 'sgd', lr: this.options.lr, momentum: 0.9 }; }
    objective(x) {
      const logits = this.network.logits(x);
      const probs = tf.softmax(logits);
      // Labels and mask are decisions on values: built from the data, so no gradient flows into them.
      const p = probs.arraySync();
      const labels = p.map((row) => row.indexOf(Math.max(...row)));
      const mask = p.map((row) => (Math.max(...row) >= this.options.threshold ? 1 : 0));
      const kept = mask.reduce((a, b) => a + b, 0);
      this.diagnose('confident', kept);
      const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(labels, logits.shape[1]), tf.logSoftmax(logits)), 1));
      return { loss: tf.div(tf.sum(tf.mul(ce, tf.tensor1d(mask))), Math.max(kept, 1)), prediction: probs };
    }
  }

  registerMethod({
    name: 'pseudo-label',
    description: 'hard pseudo-labels above a confidence threshold, BN gamma/beta trained (example plug-in)',
    usesLabels: false,
    options: z.strictObject({ lr: z.number().positive().default(1e-3), threshold: z.number().min(0).max(1).default(0.9) }),
    defaults: { cifar10: { lr: 1e-3 }, imagenet: { lr: 2.5e-4 } },
    create: (options) => new PseudoLabel('pseudo-label', options),
  });
};
