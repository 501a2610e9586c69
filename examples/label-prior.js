// An example plug-in: online label-shift correction. It keeps a running estimate of the test
// stream's class prior (an exponential average of the model's predicted probabilities) and
// reweights each prediction by it (Bayes' rule with a moving prior, as in Saerens et al. 2002).
// On label-correlated streams (a few classes at a time) this helps; on i.i.d. streams it
// stays close to the source model.
//
//   npx ctta run fmnist-c-dirichlet-sorted --plugin examples/label-prior.js --methods source,label-prior
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { registerMethod } from 'ctta';

registerMethod({
  name: 'label-prior',
  description: 'source model re-weighted by a running estimate of the test class prior (example plug-in)',
  usesLabels: false,
  options: z.strictObject({
    momentum: z.number().gt(0).max(1).default(0.1), // weight of each new batch in the prior estimate
  }),
  create: (options) => {
    let network;
    let prior; // running class prior, a kept tensor [K]
    const uniform = (k) => tf.keep(tf.fill([k], 1 / k));
    return {
      name: 'label-prior',
      usesLabels: false,
      options,
      async init(ctx) {
        network = ctx.network;
        network.setNormStatistics('running');
        prior = uniform(ctx.numClasses);
      },
      async predict(x) {
        return tf.tidy(() => {
          const p = tf.softmax(network.logits(x));
          const k = p.shape[1];
          // Reweight by prior / uniform, renormalise.
          const adjusted = p.mul(prior.mul(k));
          return adjusted.div(adjusted.sum(1, true));
        });
      },
      async adapt(x) {
        const next = tf.tidy(() => {
          const batchPrior = tf.softmax(network.logits(x)).mean(0);
          return prior.mul(1 - options.momentum).add(batchPrior.mul(options.momentum));
        });
        prior.dispose();
        prior = tf.keep(next);
      },
      stateBytes: () => (prior ? prior.size * 4 : 0),
      async reset() {
        const k = prior.shape[0];
        prior.dispose();
        prior = uniform(k);
      },
      dispose() {
        prior?.dispose();
        prior = undefined;
      },
    };
  },
});
