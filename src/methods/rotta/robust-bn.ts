/**
 * RoTTA's robust batch normalisation (`RobustBN2d` in BIT-DA/RoTTA `core/utils/bn_layers.py`),
 * in its training mode. (Its evaluation mode normalises with the stored statistics, which is
 * NormLayer's 'running' mode, so only the training mode is written here.)
 *
 * In training mode, for a batch with biased per-channel moments (mu_b, var_b):
 *   mu  = (1 - alpha) * mu_g  + alpha * mu_b
 *   var = (1 - alpha) * var_g + alpha * var_b
 * the stored global statistics become (mu, var) (detached), and the batch is normalised with
 * the same (mu, var), NOT detached: the gradient reaches the batch moments with weight alpha.
 *
 * Why not NormLayer's 'ema' mode: it normalises with the updated statistics too, but detached
 * (no gradient through the batch moments) and it folds in the unbiased variance (PyTorch's
 * running-statistics convention), where RoTTA's layer keeps the biased one. Why not 'batch'
 * with alpha and momentum: it blends with the statistics after they were already updated.
 * NormLayer has no such mode and is not this method's file, so the layer's `apply` is swapped
 * on the instance for the duration of a call (`withRobustNorm`).
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../../models/network.js';
import type { NormLayer } from '../../models/norm.js';

/** One robust-BN forward through `norm` (a BatchNorm NormLayer); updates its stored statistics. */
export function robustBatchNorm(norm: NormLayer, x: tf.Tensor4D, alpha: number): tf.Tensor4D {
  return tf.tidy(() => {
    // Every axis but the channels' (BatchNorm2d and 1d alike); biased variance, as torch.var_mean(unbiased=False).
    const m = tf.moments(x, x.shape.slice(0, -1).map((_, i) => i));
    const mean = tf.add(tf.mul(norm.movingMean!, 1 - alpha), tf.mul(m.mean, alpha)) as tf.Tensor1D;
    const variance = tf.add(tf.mul(norm.movingVariance!, 1 - alpha), tf.mul(m.variance, alpha)) as tf.Tensor1D;
    // Held-out evaluation runs frozen; never write statistics then (robust mode is not used there).
    if (!norm.frozen) {
      // A variable holds values, not a graph: the stored statistics carry no gradient, as
      // `.detach()` in the code; the variable keeps its own reference when the tidy ends.
      norm.movingMean!.assign(mean);
      norm.movingVariance!.assign(variance);
    }
    const scale = tf.mul(tf.rsqrt(tf.add(variance, norm.epsilon)), norm.gamma ?? tf.ones([norm.channels]));
    const shift = tf.sub(norm.beta ?? tf.zeros([norm.channels]), tf.mul(mean, scale));
    return tf.add(tf.mul(x, scale), shift) as tf.Tensor4D;
  });
}

/**
 * Runs `fn` with every BatchNorm layer of `network` in RoTTA's training mode (GroupNorm layers
 * are left as they are: the code replaces only BatchNorm layers). Restores the layers' own
 * `apply` afterwards, even when `fn` throws.
 */
export function withRobustNorm<T>(network: Network, alpha: number, fn: () => T): T {
  const swapped = network.norms.filter((n) => n.kind === 'batch');
  for (const n of swapped) {
    (n as { apply: NormLayer['apply'] }).apply = (x) => robustBatchNorm(n, x, alpha);
  }
  try {
    return fn();
  } finally {
    // Deleting the own property brings back the prototype's method.
    for (const n of swapped) delete (n as Partial<Pick<NormLayer, 'apply'>>).apply;
  }
}
