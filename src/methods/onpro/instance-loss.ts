/**
 * OCM's instance-level loss (Guo et al., ICML 2022), which OnPro keeps on (METHODS.md): a
 * supervised NT-Xent (SupCon-like) over two views of a batch, usually of its 16 rotation
 * variants (`rotations.ts`) labelled y + K r. Written from OCM's `Supervised_NT_xent_n` (stream
 * batch) and `Supervised_NT_xent_uni` (replay batch), as OnPro's `losses/loss.py` copies them,
 * and from how their `train.py` builds the similarity matrix.
 *
 * Rows are 2M samples: view 1 of samples 0..M-1, then view 2 of the same samples in the same
 * order (the authors' `cat([rot_x, aug(rot_x)])`); `labels` has length M and is repeated for the
 * second view. With logits l_ij = S_ij / T, p_ij = softmax over the row's columns, and
 * L_ij = -log(p_ij + eps), P_i = rows with i's label (i itself included):
 *
 * - 'stream' (`_n`): the diagonal is left out of every softmax denominator;
 *     loss = (1/2M) sum_i L_i,i' + (2/2M) sum_i (1/|P_i|) sum_{j in P_i, j != i} L_ij,
 *   i' being i's other view. The authors' code also includes j = i in the second sum, where p_ii
 *   is 0 and L_ii = -log(eps) ~ 18.42: a constant with no gradient, left out here, so their
 *   printed value = ours + (2/2M) sum_i 18.42 / |P_i| (about 18.4 when every class of the batch
 *   has one sample). The 1/|P_i| weight still counts i, as theirs does: the gradients are equal.
 * - 'replay' (`_uni`): the diagonal stays in the denominators and in the positives;
 *     loss = (1/2M) sum_i (1/|P_i|) sum_{j in P_i} L_ij.
 *
 * eps (1e-8, theirs) is kept: it is not negligible here, since with T = 0.07 a positive's p_ij
 * can fall far below 1e-8, and eps then caps L_ij at ~18.4 and damps its gradient.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../util/rng.js';
import { l2NormaliseRows } from './l2-normalise.js';
import { otherViewMask } from './view-pairs.js';

/** OCM's and OnPro's instance temperature (`--ins_t`). */
export const INSTANCE_TEMPERATURE = 0.07;

/** The authors' eps inside the logarithm. */
export const INSTANCE_EPS = 1e-8;

/** See the file comment: 'stream' is OCM's `Supervised_NT_xent_n`, 'replay' its `_uni`. */
export type NtXentVariant = 'stream' | 'replay';

export interface NtXentOptions {
  /** Default INSTANCE_TEMPERATURE (0.07). */
  temperature?: number;
  /** Default 'stream'. */
  variant?: NtXentVariant;
  /** Default INSTANCE_EPS (1e-8). */
  eps?: number;
}

/** exp of it is exactly 0 in float32: removes the diagonal from the 'stream' denominators without infinities. */
const MASKED = -1e9;

/**
 * The similarity matrix OnPro and OCM feed the loss, for rows `projections` [2M, D] (normalised
 * here):
 *
 *   S = weight * (z z^T + z f[:, offset : offset + D]^T)
 *
 * where f are the backbone `features` [2M, F] (normalised over all F dimensions, then sliced;
 * F >= D) and `offset` a random window start (`drawFeatureOffset`), drawn anew each step (and
 * separately for the stream and the replay batch). Without `features` it is weight * z z^T, the
 * plain supervised contrastive setting. `weight` is the authors' `sim_lambda` (1 in the first
 * task; from the second task on 0.5 on CIFAR-10, 1 otherwise, applied to the stream and the
 * replay matrices alike in their `train.py`). Differentiable in `projections` and `features`.
 */
export function instanceSimilarity(
  projections: tf.Tensor2D,
  options: { features?: tf.Tensor2D; featureOffset?: number; weight?: number } = {},
): tf.Tensor2D {
  const weight = options.weight ?? 1;
  const [rows, d] = projections.shape;
  const { features } = options;
  if (features && (features.shape[0] !== rows || features.shape[1] < d)) {
    throw new RangeError(`instanceSimilarity: features [${features.shape}] must have ${rows} rows and at least ${d} columns`);
  }
  const offset = options.featureOffset ?? 0;
  if (features && !(Number.isInteger(offset) && offset >= 0 && offset + d <= features.shape[1])) {
    throw new RangeError(`instanceSimilarity: feature window [${offset}, ${offset + d}) is outside ${features.shape[1]} features`);
  }
  return tf.tidy(() => {
    const z = l2NormaliseRows(projections);
    let sim: tf.Tensor2D = tf.matMul(z, z, false, true);
    if (features) {
      const window = tf.slice(l2NormaliseRows(features), [0, offset], [-1, d]);
      sim = tf.add(sim, tf.matMul(z, window, false, true));
    }
    return weight === 1 ? sim : tf.mul(sim, weight);
  });
}

/**
 * The start of the feature window of `instanceSimilarity`: uniform in [0, F - D), as the
 * authors' `torch.randperm(F - D)[0]` (so the last possible window, offset F - D, is never
 * used). F = D gives 0 (their code would fail: randperm(0) is empty).
 */
export function drawFeatureOffset(rng: Rng, featureDim: number, projectionDim: number): number {
  if (featureDim < projectionDim) throw new RangeError(`drawFeatureOffset: ${featureDim} features cannot hold a window of ${projectionDim}`);
  return featureDim === projectionDim ? 0 : rng.int(0, featureDim - projectionDim - 1);
}

/**
 * OCM's supervised NT-Xent of a similarity matrix `similarity` [2M, 2M] (rows and columns: view
 * 1 of the M samples, then view 2) with per-sample `labels` (length M). See the file comment for
 * the two variants. Differentiable in `similarity`.
 */
export function supervisedNtXent(similarity: tf.Tensor2D, labels: ArrayLike<number>, options: NtXentOptions = {}): tf.Scalar {
  const temperature = options.temperature ?? INSTANCE_TEMPERATURE;
  const variant = options.variant ?? 'stream';
  const eps = options.eps ?? INSTANCE_EPS;
  const m = labels.length;
  if (similarity.shape[0] !== 2 * m || similarity.shape[1] !== 2 * m) {
    throw new RangeError(`supervisedNtXent: a [${similarity.shape}] similarity for ${m} samples (need [${2 * m}, ${2 * m}])`);
  }
  if (m === 0) throw new RangeError('supervisedNtXent: the batch is empty');
  if (!(temperature > 0)) throw new RangeError(`supervisedNtXent: temperature must be positive, got ${temperature}`);
  if (!(eps > 0)) throw new RangeError(`supervisedNtXent: eps must be positive (it bounds -log p), got ${eps}`);
  if (variant !== 'stream' && variant !== 'replay') throw new RangeError(`supervisedNtXent: unknown variant ${String(variant)}`);
  const stream = variant === 'stream';
  const weights = positiveWeights(labels, stream);
  return tf.tidy(() => {
    let logits = tf.div(similarity, temperature);
    if (stream) logits = tf.add(logits, tf.mul(tf.eye(2 * m), MASKED));
    const logP = tf.sub(logits, tf.logSumExp(logits, 1, true));
    const nll = tf.neg(tf.log(tf.add(tf.exp(logP), eps)));
    const supervised = tf.div(tf.sum(tf.mul(nll, tf.tensor2d(weights, [2 * m, 2 * m]))), 2 * m);
    if (!stream) return supervised as tf.Scalar;
    const instance = tf.div(tf.sum(tf.mul(nll, tf.tensor2d(otherViewMask(m), [2 * m, 2 * m]))), 2 * m);
    return tf.add(instance, tf.mul(supervised, 2)) as tf.Scalar;
  });
}

/** [2M, 2M]: 1/|P_i| on the columns of row i's label (its own column only when `withoutSelf` is false). */
function positiveWeights(labels: ArrayLike<number>, withoutSelf: boolean): Float32Array {
  const m = labels.length;
  const rowLabel = (i: number) => labels[i % m]!;
  const count = new Map<number, number>();
  for (let i = 0; i < 2 * m; i++) count.set(rowLabel(i), (count.get(rowLabel(i)) ?? 0) + 1);
  const w = new Float32Array(4 * m * m);
  for (let i = 0; i < 2 * m; i++) {
    const share = 1 / count.get(rowLabel(i))!;
    for (let j = 0; j < 2 * m; j++) if (rowLabel(j) === rowLabel(i) && !(withoutSelf && i === j)) w[i * 2 * m + j] = share;
  }
  return w;
}

/**
 * Supervised NT-Xent over two views' projections, without the feature window: `z` is either
 * [2M, D] (view 1 rows then view 2 rows) or the two views [M, D] each; normalised here;
 * `labels` has length M. The same as supervisedNtXent(instanceSimilarity(z), labels, options).
 */
export function supConLoss(z: tf.Tensor2D | readonly [tf.Tensor2D, tf.Tensor2D], labels: ArrayLike<number>, options: NtXentOptions = {}): tf.Scalar {
  return tf.tidy(() => {
    const rows = Array.isArray(z) ? (tf.concat([z[0], z[1]], 0) as tf.Tensor2D) : (z as tf.Tensor2D);
    return supervisedNtXent(instanceSimilarity(rows), labels, options);
  });
}
