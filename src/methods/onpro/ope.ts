/**
 * Online Prototype Equilibrium (OPE), OnPro's prototype-level contrastive loss (Wei et al.,
 * ICCV 2023, Sec. 3.2; the authors' `modules/OPE.py`), and the class centres that its adaptive
 * feedback (APF, `apf.ts`) allocates mixup pairs from.
 *
 * Given two views' projections of a batch, each class present gets one prototype per view: the
 * mean of its L2-normalised projections, normalised again. The 2K' prototypes (K' = classes in
 * the batch, view 1 first) are contrasted like SimCLR's instances: the positive of a prototype is
 * the same class's prototype from the other view, the negatives are all the other prototypes.
 *
 * Classes are the labels actually present in the batch, in ascending order. The authors loop
 * over the label range 0 .. (task + 1) * classes_per_task and skip absent ones, which assumes
 * contiguous task labels; the set of prototypes is the same when that holds (METHODS.md).
 */
import * as tf from '@tensorflow/tfjs';
import { l2NormaliseRows } from './l2-normalise.js';
import { otherViewMask } from './view-pairs.js';

/** The OPE temperature of the paper and of the authors' `--proto_t` default. */
export const OPE_TEMPERATURE = 0.5;

/**
 * Added to the masked diagonal of the similarity matrix: exp of it is exactly 0 in float32, which
 * removes a prototype from its own row's denominator without infinities that could turn into
 * NaN in a gradient.
 */
const MASKED = -1e9;

/** The classes present in `labels`, ascending, and for each the rows of `labels` holding it. */
export function classesPresent(labels: ArrayLike<number>): { classes: number[]; members: number[][] } {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (!Number.isInteger(c)) throw new RangeError(`labels must be integers, got ${c} at ${i}`);
    let rows = byClass.get(c);
    if (!rows) byClass.set(c, (rows = []));
    rows.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  return { classes, members: classes.map((c) => byClass.get(c)!) };
}

/**
 * [K', N] matrix whose row k averages the rows of class k: multiplying it by [N, D] projections
 * gives the K' class means in one differentiable matMul.
 */
function averagingMatrix(members: number[][], n: number): tf.Tensor2D {
  const values = new Float32Array(members.length * n);
  members.forEach((rows, k) => {
    for (const i of rows) values[k * n + i] = 1 / rows.length;
  });
  return tf.tensor2d(values, [members.length, n]);
}

function checkViews(z1: tf.Tensor2D, z2: tf.Tensor2D, labels: ArrayLike<number>, who: string): void {
  if (z1.rank !== 2 || z2.rank !== 2 || z1.shape[0] !== z2.shape[0] || z1.shape[1] !== z2.shape[1]) {
    throw new RangeError(`${who}: the two views must both be [N, D], got [${z1.shape}] and [${z2.shape}]`);
  }
  if (labels.length !== z1.shape[0]) throw new RangeError(`${who}: ${labels.length} labels for ${z1.shape[0]} projections`);
  if (labels.length === 0) throw new RangeError(`${who}: the batch is empty`);
}

/**
 * OPE loss of two views' projections `z1`, `z2` ([N, D], row i of each is sample i; normalised
 * here, so raw projection-head outputs can be passed) with class `labels` (length N):
 *
 *   loss = mean over the 2K' prototypes i of -(s_i,pos(i) - log sum_{j != i} exp s_ij),
 *   s_ij = <p_i, p_j> / temperature.
 *
 * With a single class present the formula is exactly 0 (the positive is the only term of its
 * row's denominator, so each row is s - s). It is returned as computed, connected to `z1` and
 * `z2` with a zero gradient, so `tf.grad` over a step that happens to hold one class works.
 * Differentiable with respect to `z1` and `z2`; `labels` are host values (the classes decide the
 * shape of the computation).
 */
export function opeLoss(z1: tf.Tensor2D, z2: tf.Tensor2D, labels: ArrayLike<number>, temperature = OPE_TEMPERATURE): tf.Scalar {
  checkViews(z1, z2, labels, 'opeLoss');
  if (!(temperature > 0)) throw new RangeError(`opeLoss: temperature must be positive, got ${temperature}`);
  const { members } = classesPresent(labels);
  const k = members.length;
  return tf.tidy(() => {
    const average = averagingMatrix(members, labels.length);
    const p1 = l2NormaliseRows(tf.matMul(average, l2NormaliseRows(z1)));
    const p2 = l2NormaliseRows(tf.matMul(average, l2NormaliseRows(z2)));
    const p = tf.concat([p1, p2], 0);
    const logits = tf.add(tf.div(tf.matMul(p, p, false, true), temperature), tf.mul(tf.eye(2 * k), MASKED));
    // Row i's positive is column i + K' (first view) or i - K' (second view).
    const positive = tf.tensor2d(otherViewMask(k), [2 * k, 2 * k]);
    const sPositive = tf.sum(tf.mul(logits, positive), 1);
    return tf.mean(tf.sub(tf.logSumExp(logits, 1), sPositive)) as tf.Scalar;
  });
}

/**
 * APF's class centres from two views' projections ([N, D] each, normalised here): per class
 * present, (mean of its normalised view-1 projections + mean of its normalised view-2
 * projections) / 2, not normalised again. This is `classes_mean` in the authors' `train.py`,
 * computed from the un-mixed replay batch each step and used by the next step's `allocatePairs`.
 * Reads the values back to the host (synchronously); no gradient. Keys ascend.
 */
export function prototypeCentres(z1: tf.Tensor2D, z2: tf.Tensor2D, labels: ArrayLike<number>): Map<number, Float32Array> {
  checkViews(z1, z2, labels, 'prototypeCentres');
  const { classes, members } = classesPresent(labels);
  const d = z1.shape[1];
  const values = tf.tidy(() => {
    const average = averagingMatrix(members, labels.length);
    const both = tf.add(tf.matMul(average, l2NormaliseRows(z1)), tf.matMul(average, l2NormaliseRows(z2)));
    return tf.div(both, 2);
  });
  const data = values.dataSync() as Float32Array;
  values.dispose();
  return new Map(classes.map((c, k) => [c, data.slice(k * d, (k + 1) * d)]));
}
