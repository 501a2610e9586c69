/**
 * Row-wise L2 normalisation, as torch's `F.normalize(x, dim=1)` that OnPro and OCM apply to
 * projections, features and prototypes.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * torch divides by max(||x||, 1e-12). The floor goes on the squared norm (1e-24) before the square
 * root: the root's derivative is infinite at 0, so flooring after it would still give a zero row
 * a NaN gradient. For any row with a norm above 1e-12 the two are the same.
 */
const SQUARED_NORM_FLOOR = 1e-24;

/** `x` with each row divided by its L2 norm (a zero row stays zero). Differentiable. */
export function l2NormaliseRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const squared = tf.sum(tf.square(x), 1, true);
    return tf.div(x, tf.sqrt(tf.maximum(squared, SQUARED_NORM_FLOOR))) as tf.Tensor2D;
  });
}
