/**
 * LAME (Boudiaf et al., CVPR 2022): Laplacian-regularised output adjustment. No weight changes;
 * per batch, the class assignments Z minimise
 *   E(Z) = sum U*Z - lambda * sum (W Z)*Z + sum Z log Z,   U = -log p,
 * by the concave-convex procedure Z <- softmax(log p + lambda W Z), where W is an affinity between
 * the batch's L2-normalised features. Neighbours are pushed toward the same class, which is what
 * helps on label-correlated streams.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Network } from '../models/network.js';
import { FrozenMethod } from './base/frozen-method.js';
import { registerMethod } from './registry.js';

export const lameOptions = z.strictObject({
  /** Authors' code default: rbf with k = 5. An independent benchmark tuned knn with k = 1. */
  affinity: z.enum(['knn', 'rbf', 'linear']).default('rbf'),
  k: z.number().int().min(0).default(5),
  symmetric: z.boolean().default(false),
  maxIter: z.number().int().positive().default(100),
  lambda: z.number().min(0).default(1),
});
export type LameOptions = z.output<typeof lameOptions>;

/** The N x N affinity of L2-normalised features. */
export function lameAffinity(feats: tf.Tensor2D, o: Pick<LameOptions, 'affinity' | 'k' | 'symmetric'>): tf.Tensor2D {
  return tf.tidy(() => {
    const n = feats.shape[0];
    const gram = tf.matMul(feats, feats, false, true);
    let w: tf.Tensor2D;
    if (o.affinity === 'linear') {
      w = gram as tf.Tensor2D;
    } else {
      const sq = tf.relu(tf.sub(2, tf.mul(gram, 2))) as tf.Tensor2D; // |a-b|^2 of unit vectors
      const k = Math.min(o.k, n - 1);
      if (k <= 0) {
        w = tf.zeros([n, n]);
      } else if (o.affinity === 'knn') {
        // k nearest neighbours of each row, itself excluded (pushed to infinity).
        const { indices } = tf.topk(tf.neg(tf.add(sq, tf.mul(tf.eye(n), 1e9))), k);
        w = tf.sum(tf.oneHot(indices, n), 1).toFloat() as tf.Tensor2D;
      } else {
        // sigma = batch mean of each row's k-th smallest distance, itself counted at 0.
        const d = tf.sqrt(sq);
        const kth = tf.neg(tf.topk(tf.neg(d), Math.min(o.k, n)).values.slice([0, Math.min(o.k, n) - 1], [n, 1]));
        const sigma = tf.mean(kth);
        w = tf.exp(tf.div(tf.neg(sq), tf.mul(2, tf.square(sigma)))) as tf.Tensor2D;
      }
    }
    return o.symmetric ? (tf.div(tf.add(w, w.transpose()), 2) as tf.Tensor2D) : w;
  });
}

/** LAME energy of assignments Z. */
export function lameEnergy(logp: tf.Tensor2D, w: tf.Tensor2D, z: tf.Tensor2D, lambda: number): number {
  return tf.tidy(() => {
    const unary = tf.sum(tf.mul(tf.neg(logp), z));
    const pairwise = tf.sum(tf.mul(tf.matMul(w, z), z)).mul(lambda);
    const entropy = tf.sum(tf.mul(z, tf.log(tf.maximum(z, 1e-20))));
    return unary.sub(pairwise).add(entropy).dataSync()[0]!;
  });
}

/**
 * Solves LAME for one batch. Returns Z (caller disposes) and the energy after each iteration.
 * Stops when the relative energy change is <= 1e-8 (after the second iteration) or at maxIter.
 */
export function lame(probs: tf.Tensor2D, feats: tf.Tensor2D, options: Partial<LameOptions> = {}): { Z: tf.Tensor2D; energies: number[] } {
  const o = lameOptions.parse(options);
  const logp = tf.tidy(() => tf.log(tf.add(probs, 1e-10)) as tf.Tensor2D);
  const w = tf.tidy(() => lameAffinity(tf.div(feats, tf.add(tf.norm(feats, 2, 1, true), 1e-12)) as tf.Tensor2D, o));
  let z = tf.clone(probs);
  const energies: number[] = [];
  for (let i = 0; i < o.maxIter; i++) {
    const next = tf.tidy(() => tf.softmax(tf.add(logp, tf.mul(tf.matMul(w, z), o.lambda))) as tf.Tensor2D);
    z.dispose();
    z = next;
    energies.push(lameEnergy(logp, w, z, o.lambda));
    const [e, previous] = [energies[i]!, energies[i - 1]];
    if (i > 0 && Math.abs(e - previous!) <= 1e-8 * Math.abs(previous!)) break;
  }
  tf.dispose([logp, w]);
  return { Z: z, energies };
}

/** LAME never touches the model: BatchNorm stays on the source statistics (the frozen default). */
export class LameMethod extends FrozenMethod<LameOptions> {
  constructor(options: LameOptions) {
    super('lame', options);
  }

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return this.adjusted(x, this.network);
  }

  protected override evaluationOutput(x: tf.Tensor4D, net: Network): tf.Tensor2D {
    return this.adjusted(x, net);
  }

  private adjusted(x: tf.Tensor4D, net: Network): tf.Tensor2D {
    const { features, logits } = net.forward(x);
    const probs = tf.softmax(logits) as tf.Tensor2D;
    const { Z } = lame(probs, features, this.options);
    tf.dispose([features, logits, probs]);
    return Z;
  }
}

registerMethod({
  name: 'lame',
  description: 'LAME: Laplacian adjustment of the frozen model\'s outputs over each batch (no weight changes)',
  usesLabels: false,
  options: lameOptions,
  create: (o) => new LameMethod(o),
});
