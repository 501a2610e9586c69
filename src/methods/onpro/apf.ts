/**
 * Adaptive Prototypical Feedback (APF), OnPro's replay-batch mixup (Wei et al., ICCV 2023,
 * Sec. 3.3; the authors' `modules/APF.py`). A replay batch of bs items becomes:
 *
 * - "base" part: n_base = floor(bs * baseRate) items of the replay batch (a uniform subset,
 *   without replacement) mixed with a random partner from that subset (kornia's RandomMixUpV2:
 *   a permutation of the subset, lambda ~ U(lower, upper), applied with probability p per
 *   sample, or as kornia 0.6.8 does with `doubleGate`: p^2, see `planBaseMixup`);
 * - "pair" part: the other bs - n_base items are mixtures of two classes (a, b) drawn from the
 *   whole buffer, the count given to each class pair growing as the pair's prototypes get closer
 *   (`allocatePairs`), so the feedback concentrates on the classes the model confuses.
 *
 * Everything random is planned on the host (`plan*`: indices, labels and lambdas, deterministic
 * given the `Rng`); `mixImages` and `mixupCrossEntropy` are the two tensor steps. A method uses
 * them as:
 *
 *   const plan = planApf({ replayLabels, bufferLabels, prototypes, ...options }, rng);
 *   const base = mixImages(gather(replayX, plan.fromReplay.first), gather(replayX, plan.fromReplay.second), plan.fromReplay.lambda);
 *   const pairs = mixImages(bufferImages(plan.fromBuffer.first), bufferImages(plan.fromBuffer.second), plan.fromBuffer.lambda);
 *   loss = mixupCrossEntropy(model(augment(concat([base, pairs]))), plan.labels);
 *
 * (the authors augment the mixed batch before the classifier; `prototypes` are the previous
 * step's `prototypeCentres` of the un-mixed replay batch).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../util/rng.js';
import { drawBeta } from '../../util/gamma.js';
import { roundHalfEven } from './round-half-even.js';

/** How many mixed samples class pair (a, b), a < b, gets. */
export interface PairCount {
  a: number;
  b: number;
  n: number;
}

/**
 * Labels of a mixed batch: sample i is (1 - lambda[i]) * x(a[i]) + lambda[i] * x(b[i]), and its
 * loss (1 - lambda[i]) CE(a[i]) + lambda[i] CE(b[i]).
 */
export interface MixLabels {
  a: Int32Array;
  b: Int32Array;
  lambda: Float32Array;
}

/**
 * A planned mixed batch: sample i mixes source item `first[i]` (label a[i]) with `second[i]`
 * (label b[i]) with weight lambda[i] on the second. The indices address the source the plan
 * says (the replay batch's rows, or buffer slots).
 */
export interface MixPlan extends MixLabels {
  first: Int32Array;
  second: Int32Array;
}

/**
 * Defaults of the authors' `main.py` (their CIFAR-10 setting; CIFAR-100 uses p 0.2, base rate
 * 0.9), except `doubleGate` (see `planBaseMixup`).
 */
export const APF_DEFAULTS = {
  baseRate: 0.75,
  p: 0.6,
  alpha: 0.4,
  lower: 0,
  upper: 0.6,
  // Off: the documented per-sample p (METHODS.md decision); kornia 0.6.8's p^2 is the option.
  doubleGate: false,
} as const;

function checkProbability(p: number, what: string): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${what} must be a probability in [0, 1], got ${p}`);
}

/**
 * Distributes `count` mixed samples over the unordered class pairs of `prototypes` (class ->
 * centre, e.g. `prototypeCentres` of the previous step; unnormalised, all of one length):
 *
 *   weight(a, b) = softmax over pairs of 1 / ||mu_a - mu_b||,  n(a, b) = round(weight * count),
 *
 * rounding ties to even as torch does. The rounded counts may miss `count` by a few; the
 * authors' fix, followed here: if short by r, r pairs chosen uniformly among all pairs get one
 * more; if over by r, r pairs chosen uniformly among those with a non-zero count get one less.
 * The counts then sum to exactly `count`. (Largest-remainder rounding would be the deterministic
 * alternative; it is not what their code does.)
 *
 * Pairs whose centres coincide have 1/0 = infinite weight; softmax's limit is used: they share
 * the weight equally and every other pair gets 0 (torch would produce NaN).
 *
 * Returns every pair (a < b, lexicographic order, as itertools.combinations over ascending
 * classes), including those with n = 0. `count` 0 gives all-zero counts without any draw.
 * Fewer than 2 classes with `count` > 0 is an error (there is no pair to give the samples to;
 * `planApf` falls back before calling this).
 */
export function allocatePairs(prototypes: ReadonlyMap<number, ArrayLike<number>>, count: number, rng: Rng): PairCount[] {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`allocatePairs: count must be a non-negative integer, got ${count}`);
  const classes = [...prototypes.keys()].sort((x, y) => x - y);
  if (classes.length < 2 && count > 0) {
    throw new RangeError(`allocatePairs: ${count} samples need prototypes of at least 2 classes, got ${classes.length}`);
  }
  const dim = classes.length > 0 ? prototypes.get(classes[0]!)!.length : 0;
  for (const c of classes) {
    const mu = prototypes.get(c)!;
    if (mu.length !== dim) throw new RangeError(`allocatePairs: prototype of class ${c} has ${mu.length} values, class ${classes[0]} has ${dim}`);
    for (let i = 0; i < mu.length; i++) if (!Number.isFinite(mu[i]!)) throw new RangeError(`allocatePairs: prototype of class ${c} is not finite`);
  }

  const pairs: PairCount[] = [];
  const inverseDistance: number[] = [];
  for (let i = 0; i < classes.length; i++) {
    for (let j = i + 1; j < classes.length; j++) {
      const mi = prototypes.get(classes[i]!)!;
      const mj = prototypes.get(classes[j]!)!;
      let squared = 0;
      for (let t = 0; t < dim; t++) squared += (mi[t]! - mj[t]!) ** 2;
      pairs.push({ a: classes[i]!, b: classes[j]!, n: 0 });
      inverseDistance.push(1 / Math.sqrt(squared));
    }
  }
  if (count === 0) return pairs;

  const weights = softmax(inverseDistance);
  let total = 0;
  pairs.forEach((pair, k) => {
    pair.n = roundHalfEven(weights[k]! * count);
    total += pair.n;
  });
  const diff = count - total;
  if (diff > 0) {
    const order = rng.permutation(pairs.length);
    for (let k = 0; k < diff; k++) pairs[order[k]!]!.n += 1;
  } else if (diff < 0) {
    const nonZero = pairs.filter((pair) => pair.n > 0);
    const order = rng.permutation(nonZero.length);
    for (let k = 0; k < -diff; k++) nonZero[order[k]!]!.n -= 1;
  }
  return pairs;
}

/** Softmax of `v`; with infinite entries, their limit (equal shares among them, 0 elsewhere). */
function softmax(v: readonly number[]): number[] {
  const infinite = v.filter((x) => x === Infinity).length;
  if (infinite > 0) return v.map((x) => (x === Infinity ? 1 / infinite : 0));
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const sum = e.reduce((s, x) => s + x, 0);
  return e.map((x) => x / sum);
}

/**
 * Plans the pair part: for each pair with n > 0 (in the order given), n items of class a and n
 * of class b drawn uniformly with replacement from the buffer (`bufferLabels`: label of each
 * slot), then one coin per pair: with probability `p` every sample of the pair gets its own
 * lambda ~ Beta(alpha, alpha), else all get lambda 0 (un-mixed class-a items).
 *
 * A class no longer in the buffer (evicted since the prototypes were computed) is replaced by a
 * uniformly chosen class that is, as the authors do; the plan's labels are the classes used.
 * `first` / `second` are buffer slots. Draw order per pair: substitutes, a's slots, b's slots,
 * coin, lambdas.
 */
export function planPairMixup(
  pairs: readonly PairCount[],
  bufferLabels: ArrayLike<number>,
  rng: Rng,
  options: { p?: number; alpha?: number } = {},
): MixPlan {
  const p = options.p ?? APF_DEFAULTS.p;
  const alpha = options.alpha ?? APF_DEFAULTS.alpha;
  checkProbability(p, 'planPairMixup: p');
  if (!(alpha > 0)) throw new RangeError(`planPairMixup: alpha must be positive, got ${alpha}`);
  const slotsOf = new Map<number, number[]>();
  for (let s = 0; s < bufferLabels.length; s++) {
    const c = bufferLabels[s]!;
    let slots = slotsOf.get(c);
    if (!slots) slotsOf.set(c, (slots = []));
    slots.push(s);
  }
  const available = [...slotsOf.keys()].sort((x, y) => x - y);
  const total = pairs.reduce((s, pair) => s + pair.n, 0);
  if (total > 0 && available.length === 0) throw new RangeError('planPairMixup: the buffer is empty');

  const plan = emptyPlan(total);
  let at = 0;
  const resolve = (c: number) => (slotsOf.has(c) ? c : available[rng.int(0, available.length - 1)]!);
  for (const pair of pairs) {
    if (!Number.isSafeInteger(pair.n) || pair.n < 0) throw new RangeError(`planPairMixup: pair (${pair.a}, ${pair.b}) has count ${pair.n}`);
    if (pair.n === 0) continue;
    const a = resolve(pair.a);
    const b = resolve(pair.b);
    const slotsA = slotsOf.get(a)!;
    const slotsB = slotsOf.get(b)!;
    for (let i = 0; i < pair.n; i++) plan.first[at + i] = slotsA[rng.int(0, slotsA.length - 1)]!;
    for (let i = 0; i < pair.n; i++) plan.second[at + i] = slotsB[rng.int(0, slotsB.length - 1)]!;
    // `<` rather than the authors' `<=`: identical except for p = 0, which then never mixes.
    const mixed = rng.float() < p;
    for (let i = 0; i < pair.n; i++) {
      plan.a[at + i] = a;
      plan.b[at + i] = b;
      plan.lambda[at + i] = mixed ? drawBeta(rng, alpha, alpha) : 0;
    }
    at += pair.n;
  }
  return plan;
}

/**
 * Plans the base part: `count` items of the replay batch labelled `labels`, chosen
 * uniformly without replacement, each mixed with the item at a random permutation of the chosen
 * ones (possibly itself), with lambda ~ U(lower, upper) or 0.
 *
 * Which samples get their lambda:
 * - `doubleGate: false` (default): each sample independently with probability p (the
 *   documented p of kornia's RandomMixUpV2);
 * - `doubleGate: true`: what kornia 0.6.8, which the authors pin, actually does. Its
 *   RandomMixUpV2 passes p as the batch probability (`p_batch=p`, element probability 1), so one
 *   coin decides whether the whole base batch is mixed at all, and its MixupGenerator then zeroes
 *   each sample's lambda with probability 1 - p. A sample is mixed with probability p^2, and in
 *   a fraction 1 - p of the steps no base sample is.
 *
 * `first` / `second` are rows of the replay batch. Draw order: the subset, the permutation, the
 * batch coin (doubleGate only), then per sample its coin and its lambda (always drawn, so the
 * stream does not depend on the outcomes).
 */
export function planBaseMixup(
  labels: ArrayLike<number>,
  count: number,
  rng: Rng,
  options: { p?: number; lower?: number; upper?: number; doubleGate?: boolean } = {},
): MixPlan {
  const p = options.p ?? APF_DEFAULTS.p;
  const lower = options.lower ?? APF_DEFAULTS.lower;
  const upper = options.upper ?? APF_DEFAULTS.upper;
  const doubleGate = options.doubleGate ?? APF_DEFAULTS.doubleGate;
  checkProbability(p, 'planBaseMixup: p');
  if (!(lower >= 0 && lower <= upper && upper <= 1)) throw new RangeError(`planBaseMixup: need 0 <= lower <= upper <= 1, got (${lower}, ${upper})`);
  const batchSize = labels.length;
  if (!Number.isSafeInteger(count) || count < 0 || count > batchSize) {
    throw new RangeError(`planBaseMixup: cannot pick ${count} items from a replay batch of ${batchSize}`);
  }
  const plan = emptyPlan(count);
  // Partial Fisher-Yates: the first `count` entries are a uniform subset in random order.
  const rows = new Int32Array(batchSize);
  for (let i = 0; i < batchSize; i++) rows[i] = i;
  for (let i = 0; i < count; i++) {
    const j = rng.int(i, batchSize - 1);
    const t = rows[i]!;
    rows[i] = rows[j]!;
    rows[j] = t;
  }
  const partner = rng.permutation(count);
  const batchGate = doubleGate ? rng.float() < p : true;
  for (let i = 0; i < count; i++) {
    plan.first[i] = rows[i]!;
    plan.second[i] = rows[partner[i]!]!;
    plan.a[i] = labels[plan.first[i]!]!;
    plan.b[i] = labels[plan.second[i]!]!;
    const gate = rng.float() < p;
    const lambda = lower + (upper - lower) * rng.float();
    plan.lambda[i] = batchGate && gate ? lambda : 0;
  }
  return plan;
}

function emptyPlan(n: number): MixPlan {
  return { first: new Int32Array(n), second: new Int32Array(n), a: new Int32Array(n), b: new Int32Array(n), lambda: new Float32Array(n) };
}

export interface ApfOptions {
  /** Labels of the replay batch drawn this step (its length is bs). */
  replayLabels: ArrayLike<number>;
  /** Label of every buffer slot (the pair part draws from the whole buffer). */
  bufferLabels: ArrayLike<number>;
  /** Class centres from the previous step (`prototypeCentres`). */
  prototypes: ReadonlyMap<number, ArrayLike<number>>;
  baseRate?: number;
  p?: number;
  alpha?: number;
  lower?: number;
  upper?: number;
  doubleGate?: boolean;
}

export interface ApfPlan {
  /** Samples mixed within the replay batch; indices are its rows. */
  fromReplay: MixPlan;
  /** Class-pair samples; indices are buffer slots. */
  fromBuffer: MixPlan;
  /** The labels of the mixed batch in the order fromReplay then fromBuffer. */
  labels: MixLabels;
  /** The allocation the pair part used (empty when it fell back, see `planApf`). */
  pairs: PairCount[];
}

/**
 * Plans a whole APF batch of bs = replayLabels.length samples: floor(bs * baseRate) base samples
 * then bs - that many pair samples. Each part draws from its own fork of `rng` ('base',
 * 'allocate', 'pairs'), so changing one part's settings leaves the other's draws unchanged.
 *
 * Fallback (the authors' code fails here): with fewer than 2 prototype classes there is no pair
 * to allocate, so the remaining replay items (those not picked for the base part) join the batch
 * un-mixed (lambda 0, `fromReplay` indices, plain CE).
 */
export function planApf(options: ApfOptions, rng: Rng): ApfPlan {
  const baseRate = options.baseRate ?? APF_DEFAULTS.baseRate;
  if (!(baseRate >= 0 && baseRate <= 1)) throw new RangeError(`planApf: baseRate must be in [0, 1], got ${baseRate}`);
  const bs = options.replayLabels.length;
  // The same double arithmetic as the authors' int(buffer_batch_size * base_rate).
  const nBase = Math.floor(bs * baseRate);
  const nPairs = bs - nBase;
  let fromReplay = planBaseMixup(options.replayLabels, nBase, rng.fork('base'), options);
  let fromBuffer = emptyPlan(0);
  let pairs: PairCount[] = [];
  if (nPairs > 0 && options.prototypes.size >= 2) {
    pairs = allocatePairs(options.prototypes, nPairs, rng.fork('allocate'));
    fromBuffer = planPairMixup(pairs, options.bufferLabels, rng.fork('pairs'), options);
  } else if (nPairs > 0) {
    fromReplay = appendUnmixedRest(fromReplay, options.replayLabels);
  }
  return { fromReplay, fromBuffer, labels: concatLabels(fromReplay, fromBuffer), pairs };
}

/** `plan` plus every replay row it does not use, un-mixed, in row order. */
function appendUnmixedRest(plan: MixPlan, labels: ArrayLike<number>): MixPlan {
  const used = new Set(plan.first);
  const rest: number[] = [];
  for (let i = 0; i < labels.length; i++) if (!used.has(i)) rest.push(i);
  const out = emptyPlan(plan.first.length + rest.length);
  for (const key of ['first', 'second', 'a', 'b', 'lambda'] as const) out[key].set(plan[key]);
  rest.forEach((row, k) => {
    const i = plan.first.length + k;
    out.first[i] = row;
    out.second[i] = row;
    out.a[i] = labels[row]!;
    out.b[i] = labels[row]!;
  });
  return out;
}

/** Labels of `parts` one after the other. */
export function concatLabels(...parts: MixLabels[]): MixLabels {
  const n = parts.reduce((s, part) => s + part.a.length, 0);
  const out: MixLabels = { a: new Int32Array(n), b: new Int32Array(n), lambda: new Float32Array(n) };
  let at = 0;
  for (const part of parts) {
    out.a.set(part.a, at);
    out.b.set(part.b, at);
    out.lambda.set(part.lambda, at);
    at += part.a.length;
  }
  return out;
}

/** (1 - lambda[i]) * xa[i] + lambda[i] * xb[i] for every sample i (xa, xb: [n, ...]). */
export function mixImages<T extends tf.Tensor>(xa: T, xb: T, lambda: Float32Array): T {
  if (xa.shape.join() !== xb.shape.join()) throw new RangeError(`mixImages: shapes [${xa.shape}] and [${xb.shape}] differ`);
  if (lambda.length !== xa.shape[0]) throw new RangeError(`mixImages: ${lambda.length} lambdas for ${xa.shape[0]} samples`);
  return tf.tidy(() => {
    const shape = [lambda.length, ...xa.shape.slice(1).map(() => 1)];
    const l = tf.tensor(lambda, shape);
    // xa + l (xb - xa): one multiply fewer than (1 - l) xa + l xb, equal up to float rounding.
    return tf.add(xa, tf.mul(l, tf.sub(xb, xa))) as T;
  });
}

/**
 * Mixup cross-entropy, the authors' `loss_mixup`: mean over samples of
 * (1 - lambda) CE(logits, a) + lambda CE(logits, b). Differentiable with respect to `logits`
 * ([n, K]); labels must be in [0, K).
 */
export function mixupCrossEntropy(logits: tf.Tensor2D, labels: MixLabels): tf.Scalar {
  const [n, k] = logits.shape;
  if (labels.a.length !== n || labels.b.length !== n || labels.lambda.length !== n) {
    throw new RangeError(`mixupCrossEntropy: labels for ${labels.a.length} samples, logits for ${n}`);
  }
  for (let i = 0; i < n; i++) {
    if (!(labels.a[i]! >= 0 && labels.a[i]! < k && labels.b[i]! >= 0 && labels.b[i]! < k)) {
      throw new RangeError(`mixupCrossEntropy: sample ${i} has labels (${labels.a[i]}, ${labels.b[i]}) outside [0, ${k})`);
    }
  }
  return tf.tidy(() => {
    const l = tf.tensor2d(labels.lambda, [n, 1]);
    // The soft target (1 - lambda) onehot(a) + lambda onehot(b) against log-softmax is the same sum.
    const target = tf.add(tf.mul(tf.sub(1, l), tf.oneHot(tf.tensor1d(labels.a, 'int32'), k)), tf.mul(l, tf.oneHot(tf.tensor1d(labels.b, 'int32'), k)));
    return tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
}
