/**
 * BatchNorm with the current batch's statistics as ONE differentiable op with its closed-form
 * gradient (what TENT, EATA, SAR and every training pass differentiate).
 *
 * Written as ordinary ops, autodiff records a dozen full-size nodes per layer (centre, scale,
 * shift, and the statistics' own graph) and each broadcast's backward reduces with `tf.sum`,
 * which on wasm transposes the whole activation first. Here the backward is
 *   dbeta = sum(dy), dgamma = sum(dy * xhat),
 *   dx = gamma * r * (dy - mean(dy) - xhat * mean(dy * xhat)),   r = 1 / sqrt(var + eps),
 * with every reduction an average pooling (reductions.ts), and the tape keeps two tensors
 * (xhat and r). Same values as the op-by-op form up to float32 rounding; the gradient tests
 * (finite differences, PyTorch fixtures) cover it.
 */
import * as tf from '@tensorflow/tfjs';
import { channelMean, channelMoments } from './reductions.js';

export interface BatchNormResult {
  y: tf.Tensor4D;
  /** The batch's mean and biased variance (for the running statistics; no gradient). */
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

/** y = gamma * (x - mean) / sqrt(var + epsilon) + beta with this batch's statistics. The caller disposes all three results. */
export function batchNormWithBatchStatistics(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): BatchNormResult {
  let stats: { mean: tf.Tensor1D; variance: tf.Tensor1D } | undefined;
  const op = tf.customGrad((xIn, g, b, save) => {
    const input = xIn as tf.Tensor4D;
    const { mean, variance } = channelMoments(input);
    stats = { mean: tf.keep(mean), variance: tf.keep(variance) };
    const r = tf.rsqrt(tf.add(variance, epsilon)) as tf.Tensor1D;
    const xhat = tf.mul(tf.sub(input, mean), r) as tf.Tensor4D;
    (save as tf.GradSaveFunc)([xhat, r, g as tf.Tensor1D]);
    return {
      value: tf.add(tf.mul(xhat, g as tf.Tensor1D), b as tf.Tensor1D),
      gradFunc: (dy, saved) => {
        const [xh, rs, gm] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
        const d = dy as tf.Tensor4D;
        const rows = d.size / d.shape[3];
        const dyMean = channelMean(d);
        const dyXhatMean = channelMean(tf.mul(d, xh) as tf.Tensor4D);
        const dx = tf.mul(tf.sub(tf.sub(d, dyMean), tf.mul(xh, dyXhatMean)), tf.mul(gm, rs));
        return [dx, tf.mul(dyXhatMean, rows), tf.mul(dyMean, rows)];
      },
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor4D;
  return { y, mean: stats!.mean, variance: stats!.variance };
}
