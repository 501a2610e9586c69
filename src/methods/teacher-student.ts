/**
 * The mean-teacher machinery CoTTA and ViDA share: a soft cross-entropy against a detached
 * target, the teacher as an exponential moving average of the student, and stochastic restore
 * of student weights to their source values. All three work on every trainable weight of the
 * networks, adapters included.
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../models/network.js';
import type { WeightSnapshot } from '../models/snapshot.js';
import type { Rng } from '../util/rng.js';

/** Mean over the batch of `-sum softmax(target) * log softmax(logits)`. */
export function softCrossEntropy(logits: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(tf.softmax(target), tf.logSoftmax(logits)), 1))) as tf.Scalar);
}

/**
 * The ImageNet loss of CoTTA's and ViDA's code: mean over the batch of
 * `-0.5 sum softmax(t) log softmax(s) - 0.5 sum softmax(s) log softmax(t)`, t constant.
 */
export function symmetricCrossEntropy(logits: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    // `target` is a constant here: methods compute it before the differentiated pass.
    const forward = tf.sum(tf.mul(tf.softmax(target), tf.logSoftmax(logits)), 1);
    const backward = tf.sum(tf.mul(tf.softmax(logits), tf.logSoftmax(target)), 1);
    return tf.neg(tf.mean(tf.add(tf.mul(forward, 0.5), tf.mul(backward, 0.5)))) as tf.Scalar;
  });
}

/**
 * `teacher <- m * teacher + (1 - m) * student`, for every trainable weight; `momentum` may be
 * given per weight name (ViDA's code moves the teacher's adapters at their own rate).
 */
export function emaUpdate(teacher: Network, student: Network, momentum: number | ((name: string) => number)): void {
  const t = teacher.namedTrainables();
  for (const [name, sv] of student.namedTrainables()) {
    const tv = t.get(name)!;
    const m = typeof momentum === 'number' ? momentum : momentum(name);
    tf.tidy(() => tv.assign(tf.add(tf.mul(tv, m), tf.mul(sv, 1 - m))));
  }
}

/** Resets each element of every trainable weight to `source` with probability `p` (seeded). */
export function stochasticRestore(network: Network, source: WeightSnapshot, p: number, rng: Rng): void {
  if (p <= 0) return;
  for (const [name, v] of network.namedTrainables()) {
    const s = source.get(name)!;
    if (p >= 1) {
      v.assign(s);
      continue;
    }
    const seed = rng.int(0, 2 ** 31 - 1);
    tf.tidy(() => {
      const mask = tf.less(tf.randomUniform(v.shape, 0, 1, 'float32', seed), p);
      v.assign(tf.where(mask, s, v));
    });
  }
}

