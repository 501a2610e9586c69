/**
 * UER's two logits and two losses, on features h [N, D] and the head kernel W [D, K] (column c =
 * class c's weight vector w_c), optional bias b [K].
 *
 * The dot-product logit factors as z_c = w_c . h (+ b_c) = ||w_c|| ||h|| cos(theta_c) (+ b_c):
 * a norm factor ||w_c|| ||h|| and an angle factor cos(theta_c).
 *  - `cosineLogits`: the angle factor alone, cos(theta_c) / temperature. No norm and no bias, so
 *    the stream loss built on it is unchanged when any w_c or any h is rescaled by a positive
 *    factor: learning the stream through it cannot grow the current classes' norms, which is
 *    where the paper locates the bias towards new classes' logits.
 *  - `dotProductLogits`: both factors (the head's ordinary output), for the replay loss and for
 *    inference.
 * Each loss is the mean cross-entropy over its own batch.
 *
 * Normalisation: v / max(||v||, 1e-6). The authors' cosine heads (PCR, ER-FSL repositories)
 * divide by ||v|| + 1e-6 instead; for a non-degenerate vector the two differ by a relative 1e-6,
 * and the max form is exactly scale-invariant and has a finite gradient at a zero vector (the
 * floor is applied to the squared norm before the square root, whose derivative at 0 is infinite).
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from '../er.js';

/** Squared-norm floor: vectors shorter than 1e-6 are divided by 1e-6. */
const SQUARED_NORM_FLOOR = 1e-12;

/** `x` divided by its L2 norm along `axis` (1: rows, 0: columns). Differentiable. */
function normalise(x: tf.Tensor2D, axis: 0 | 1): tf.Tensor2D {
  return tf.tidy(() => {
    const squared = tf.sum(tf.square(x), axis, true);
    return tf.div(x, tf.sqrt(tf.maximum(squared, SQUARED_NORM_FLOOR))) as tf.Tensor2D;
  });
}

/** cos(theta) / temperature, [N, K]: unit features against unit class weight vectors. */
export function cosineLogits(features: tf.Tensor2D, kernel: tf.Tensor2D, temperature: number): tf.Tensor2D {
  return tf.tidy(() => tf.div(tf.matMul(normalise(features, 1), normalise(kernel, 0)), temperature) as tf.Tensor2D);
}

/** h W (+ b), [N, K]: the head's logits. */
export function dotProductLogits(features: tf.Tensor2D, kernel: tf.Tensor2D, bias?: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const z = tf.matMul(features, kernel);
    return (bias ? tf.add(z, bias) : z) as tf.Tensor2D;
  });
}

/** UER's loss on the stream batch: mean CE of the cosine logits (angle factor only). */
export function streamLoss(features: tf.Tensor2D, kernel: tf.Tensor2D, labels: tf.Tensor1D, temperature: number): tf.Scalar {
  return tf.tidy(() => crossEntropy(cosineLogits(features, kernel, temperature), labels));
}

/** UER's loss on the replay batch: mean CE of the dot-product logits (norm and angle). */
export function replayLoss(features: tf.Tensor2D, kernel: tf.Tensor2D, bias: tf.Tensor1D | undefined, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => crossEntropy(dotProductLogits(features, kernel, bias), labels));
}
