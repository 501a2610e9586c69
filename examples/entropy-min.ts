// A TypeScript plug-in: ctta compiles it on load (types are erased; `import type` needs ctta
// installed only for your editor). TENT's loss on the last norm layer's affine parameters only.
// Run: npx ctta run fmnist-c-continual --plugin examples/entropy-min.ts --methods tent,entropy-last
import type * as Ctta from 'ctta';

type Api = typeof Ctta & { tf: typeof import('@tensorflow/tfjs'); z: typeof import('zod').z };

export default ({ tf, z, GradientMethod, registerMethod }: Api): void => {
  interface Options extends Record<string, unknown> {
    lr: number;
  }
  class EntropyLast extends GradientMethod<Options> {
    override async setup(): Promise<void> {
      this.network.setNormStatistics('batch');
    }
    trainable() {
      // gamma and beta of the last norm layer
      return this.network.normAffineVariables().slice(-2);
    }
    optimizers() {
      return { kind: 'adam' as const, lr: this.options.lr };
    }
    objective(x: import('@tensorflow/tfjs').Tensor4D) {
      const logits = this.network.logits(x);
      const entropy = tf.neg(tf.mean(tf.sum(tf.mul(tf.softmax(logits), tf.logSoftmax(logits)), 1))) as import('@tensorflow/tfjs').Scalar;
      return { loss: entropy, prediction: tf.softmax(logits) };
    }
  }

  registerMethod<Options>({
    name: 'entropy-last',
    description: 'entropy minimisation of the last norm layer only (example TypeScript plug-in)',
    usesLabels: false,
    options: z.strictObject({ lr: z.number().positive().default(1e-3) }),
    create: (options) => new EntropyLast('entropy-last', options),
  });
};
