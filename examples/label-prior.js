// An example plug-in: online label-shift correction. It keeps a running estimate of the test
// stream's class prior (an exponential average of the model's predicted probabilities) and
// reweights each prediction by it (Bayes' rule with a moving prior, as in Saerens et al. 2002).
// On label-correlated streams (a few classes at a time) this helps; on i.i.d. streams it
// stays close to the source model. No weight changes: it extends FrozenMethod (the frozen
// source model, BatchNorm on its stored statistics) and overrides only what differs.
//
//   npx ctta run fmnist-c-dirichlet-sorted --plugin examples/label-prior.js --methods source,label-prior
//
// The older form of a plug-in: it imports from 'ctta' and registers when loaded, so 'ctta',
// '@tensorflow/tfjs' and 'zod' must resolve from its folder (inside a project that installed
// ctta). examples/pseudo-label.js shows the form that works from any folder.
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { FrozenMethod, registerMethod } from 'ctta';

/** A kept uniform prior over k classes. */
const uniform = (k) => tf.keep(tf.fill([k], 1 / k));

class LabelPrior extends FrozenMethod {
  /** The running class prior over the head's classes, a kept tensor [K]. */
  prior;

  async setup() {
    this.prior = uniform(this.network.numClasses);
  }

  /** The stream prediction: the source model's probabilities reweighted by the prior. */
  async output(x) {
    return this.reweighted(x, this.network);
  }

  /** Held-out images get the same reweighting, with the prior as it is (evaluate changes nothing). */
  evaluationOutput(x, network) {
    return this.reweighted(x, network);
  }

  reweighted(x, network) {
    return tf.tidy(() => {
      const p = tf.softmax(network.logits(x));
      const k = p.shape[1];
      // Reweight by prior / uniform, renormalise.
      const adjusted = p.mul(this.prior.mul(k));
      return adjusted.div(adjusted.sum(1, true));
    });
  }

  /** Folds the batch's mean predicted probabilities (of the source model) into the prior. */
  async adapt(x) {
    const { momentum } = this.options;
    const next = tf.tidy(() => {
      const batchPrior = tf.softmax(this.network.logits(x)).mean(0);
      return this.prior.mul(1 - momentum).add(batchPrior.mul(momentum));
    });
    this.prior.dispose();
    this.prior = tf.keep(next);
    this.diagnose('priorMax', Math.max(...(await this.prior.data())));
  }

  extraStateBytes() {
    return this.prior ? this.prior.size * 4 : 0;
  }

  async reset() {
    await super.reset();
    this.prior.dispose();
    this.prior = uniform(this.network.numClasses);
  }

  dispose() {
    this.prior?.dispose();
    this.prior = undefined;
    super.dispose();
  }
}

registerMethod({
  name: 'label-prior',
  description: 'source model re-weighted by a running estimate of the test class prior (example plug-in)',
  usesLabels: false,
  options: z.strictObject({
    momentum: z.number().gt(0).max(1).default(0.1), // weight of each new batch in the prior estimate
  }),
  create: (options) => new LabelPrior('label-prior', options),
});
