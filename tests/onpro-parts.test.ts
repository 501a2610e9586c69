/**
 * OnPro's building blocks (src/methods/onpro/): the view augmentation, the OPE prototype loss,
 * APF's pair allocation and mixup plans, the Gamma / Beta draws, OCM's rotation variants and its
 * supervised NT-Xent. Losses are checked against values computed here with plain numbers and
 * their gradients against central finite differences; random plans against their defining
 * properties; every test checks that it leaves no tensor behind.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyAugment, onproAugment, sampleAugmentParams, type AugmentParams } from '../src/methods/onpro/augment.js';
import { allocatePairs, mixImages, mixupCrossEntropy, planApf, planBaseMixup, planPairMixup, type PairCount } from '../src/methods/onpro/apf.js';
import { drawFeatureOffset, instanceSimilarity, supConLoss, supervisedNtXent } from '../src/methods/onpro/instance-loss.js';
import { opeLoss, prototypeCentres } from '../src/methods/onpro/ope.js';
import { drawBeta, drawGamma } from '../src/util/gamma.js';
import { rotationLabels, rotationVariants } from '../src/methods/onpro/rotations.js';
import { roundHalfEven } from '../src/methods/onpro/round-half-even.js';
import { Rng } from '../src/util/rng.js';
import { useWasm } from './helpers.js';

beforeAll(useWasm);

/** Runs `body` and fails if it leaves tensors behind. */
function noLeak<T>(body: () => T): T {
  const before = tf.memory().numTensors;
  const out = body();
  expect(tf.memory().numTensors).toBe(before);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Plain-number references.

const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const normalise = (a: number[]) => {
  const n = Math.sqrt(dot(a, a));
  return a.map((x) => x / n);
};

/** OPE by the paper's formula, in float64. */
function opeReference(z1: number[][], z2: number[][], labels: number[], tau: number): number {
  const classes = [...new Set(labels)].sort((a, b) => a - b);
  const proto = (z: number[][]) =>
    classes.map((c) => {
      const rows = z.map(normalise).filter((_, i) => labels[i] === c);
      return normalise(rows[0]!.map((_, d) => rows.reduce((s, r) => s + r[d]!, 0) / rows.length));
    });
  const p = [...proto(z1), ...proto(z2)];
  const k = classes.length;
  let total = 0;
  for (let i = 0; i < 2 * k; i++) {
    let denom = 0;
    for (let j = 0; j < 2 * k; j++) if (j !== i) denom += Math.exp(dot(p[i]!, p[j]!) / tau);
    total += -(dot(p[i]!, p[(i + k) % (2 * k)]!) / tau - Math.log(denom));
  }
  return total / (2 * k);
}

/** OCM's Supervised_NT_xent_n / _uni on z = [view 1 rows; view 2 rows] (normalised), without the constant self term of _n. */
function ntXentReference(z: number[][], labels: number[], tau: number, variant: 'stream' | 'replay', eps = 1e-8): number {
  const zn = z.map(normalise);
  const m = labels.length;
  const lab = (i: number) => labels[i % m]!;
  const nll = (i: number, j: number) => {
    let denom = 0;
    for (let k = 0; k < 2 * m; k++) if (variant === 'replay' || k !== i) denom += Math.exp(dot(zn[i]!, zn[k]!) / tau);
    return -Math.log(Math.exp(dot(zn[i]!, zn[j]!) / tau) / denom + eps);
  };
  let supervised = 0;
  let instance = 0;
  for (let i = 0; i < 2 * m; i++) {
    const positives = [...Array(2 * m).keys()].filter((j) => lab(j) === lab(i));
    for (const j of positives) if (variant === 'replay' || j !== i) supervised += nll(i, j) / positives.length;
    instance += nll(i, (i + m) % (2 * m));
  }
  return variant === 'replay' ? supervised / (2 * m) : instance / (2 * m) + (2 * supervised) / (2 * m);
}

/** Asserts that tf.grad of `f` at `x0` matches central differences with step `h`. */
function expectGradientMatches(f: (x: tf.Tensor2D) => tf.Scalar, x0: number[][], h: number, rel = 1e-2, abs = 2e-3): void {
  const x = tf.tensor2d(x0);
  const g = tf.grad((t: tf.Tensor) => f(t as tf.Tensor2D))(x);
  const analytic = g.arraySync() as number[][];
  tf.dispose([x, g]);
  const at = (values: number[][]) =>
    tf.tidy(() => f(tf.tensor2d(values)).dataSync()[0]!);
  for (let i = 0; i < x0.length; i++) {
    for (let j = 0; j < x0[0]!.length; j++) {
      const plus = x0.map((r) => r.slice());
      const minus = x0.map((r) => r.slice());
      plus[i]![j]! += h;
      minus[i]![j]! -= h;
      const numeric = (at(plus) - at(minus)) / (2 * h);
      expect(Math.abs(analytic[i]![j]! - numeric), `d/dx[${i}][${j}]: ${analytic[i]![j]} vs ${numeric}`).toBeLessThanOrEqual(abs + rel * Math.abs(numeric));
    }
  }
}

function randomMatrix(rng: Rng, rows: number, cols: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal()));
}

// ---------------------------------------------------------------------------------------------

describe('OPE (online prototype equilibrium)', () => {
  it('equals the closed form on orthogonal prototypes: log(2 + e^2) - 2 at tau 0.5', () => {
    noLeak(() => {
      // Class 0: two samples along x (normalised mean [1, 0]); class 1: one along y. Both views equal.
      const z = tf.tensor2d([[3, 0], [0, 5], [1, 0]]);
      const loss = opeLoss(z, z, [0, 1, 0]);
      // Each prototype's row: positive sim 1/0.5 = 2, the other two 0, so -(2 - log(1 + e^2 + 1)).
      expect(loss.dataSync()[0]).toBeCloseTo(Math.log(2 + Math.E ** 2) - 2, 5);
      tf.dispose([z, loss]);
    });
  });

  it('equals the formula computed by hand on a random batch (3 classes, unsorted labels)', () => {
    noLeak(() => {
      const rng = Rng.derive(1, 'ope');
      const z1 = randomMatrix(rng, 7, 4);
      const z2 = randomMatrix(rng, 7, 4);
      const labels = [5, 2, 5, 9, 2, 2, 9];
      for (const tau of [0.5, 0.1]) {
        const loss = tf.tidy(() => opeLoss(tf.tensor2d(z1), tf.tensor2d(z2), labels, tau).dataSync()[0]!);
        expect(loss).toBeCloseTo(opeReference(z1, z2, labels, tau), 4);
      }
    });
  });

  it('is 0 with one class present, and still differentiable (zero gradient)', () => {
    noLeak(() => {
      const rng = Rng.derive(2, 'ope');
      const z1 = tf.tensor2d(randomMatrix(rng, 4, 3));
      const z2 = tf.tensor2d(randomMatrix(rng, 4, 3));
      const loss = opeLoss(z1, z2, [3, 3, 3, 3]);
      expect(Math.abs(loss.dataSync()[0]!)).toBeLessThan(1e-6);
      const g = tf.grad((x: tf.Tensor) => opeLoss(x as tf.Tensor2D, z2, [3, 3, 3, 3]))(z1);
      expect(Math.max(...g.dataSync().map(Math.abs))).toBeLessThan(1e-6);
      tf.dispose([z1, z2, loss, g]);
    });
  });

  it('has gradients that match finite differences (both views)', () => {
    noLeak(() => {
      const rng = Rng.derive(3, 'ope');
      const z1 = randomMatrix(rng, 6, 3);
      const z2 = randomMatrix(rng, 6, 3);
      const labels = [0, 1, 2, 0, 1, 1];
      const other = tf.tensor2d(z2);
      expectGradientMatches((x) => opeLoss(x, other, labels), z1, 1e-2);
      const first = tf.tensor2d(z1);
      expectGradientMatches((x) => opeLoss(first, x, labels, 0.25), z2, 5e-3);
      tf.dispose([other, first]);
    });
  });

  it('prototypeCentres: the mean of the two views\' class means of normalised projections, not renormalised', () => {
    noLeak(() => {
      const z1 = tf.tensor2d([[2, 0], [0, 3], [0, 1]]);
      const z2 = tf.tensor2d([[0, 4], [5, 0], [1, 0]]);
      const centres = prototypeCentres(z1, z2, [7, 4, 7]);
      expect([...centres.keys()]).toEqual([4, 7]);
      // Class 7: view 1 mean [0.5, 0.5], view 2 mean [0.5, 0.5] -> [0.5, 0.5]; class 4: ([0, 1] + [1, 0]) / 2.
      expect(Array.from(centres.get(7)!)).toEqual([0.5, 0.5]);
      expect(Array.from(centres.get(4)!)).toEqual([0.5, 0.5]);
      tf.dispose([z1, z2]);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('APF pair allocation', () => {
  it('counts sum exactly to the request, over every pair in lexicographic order, deterministically', () => {
    const rng = Rng.derive(4, 'protos');
    for (let trial = 0; trial < 30; trial++) {
      const k = 2 + (trial % 5);
      const classes = rng.permutation(20).slice(0, k);
      const prototypes = new Map([...classes].map((c) => [c, Float32Array.from({ length: 8 }, () => rng.normal(0, 0.3))]));
      for (let count = 0; count <= 40; count += 3) {
        const pairs = allocatePairs(prototypes, count, Rng.derive(trial, 'alloc', count));
        expect(pairs.length).toBe((k * (k - 1)) / 2);
        expect(pairs.reduce((s, p) => s + p.n, 0)).toBe(count);
        expect(pairs.every((p) => p.n >= 0 && p.a < p.b)).toBe(true);
        const keys = pairs.map((p) => p.a * 100 + p.b);
        expect(keys).toEqual([...keys].sort((a, b) => a - b));
        expect(allocatePairs(prototypes, count, Rng.derive(trial, 'alloc', count))).toEqual(pairs);
      }
    }
  });

  it('favours the closest pair: softmax of inverse distances, rounded', () => {
    // On a line: d(3,7) = 0.5, d(3,9) = 1, d(7,9) = 1.5 -> weights softmax(2, 1, 2/3) = 0.613, 0.226, 0.162.
    const prototypes = new Map([
      [3, [0, 0]],
      [7, [0.5, 0]],
      [9, [-1, 0]],
    ]);
    // 20 x weights = 12.26, 4.51, 3.23: rounds to 12 + 5 + 3 = 20, no remainder to fix.
    expect(allocatePairs(prototypes, 20, Rng.derive(0, 'a'))).toEqual([
      { a: 3, b: 7, n: 12 },
      { a: 3, b: 9, n: 5 },
      { a: 7, b: 9, n: 3 },
    ]);
    for (let count = 1; count <= 60; count++) {
      const [closest, ...rest] = allocatePairs(prototypes, count, Rng.derive(count, 'a'));
      for (const other of rest) expect(closest!.n).toBeGreaterThanOrEqual(other.n);
    }
  });

  it('fixes the rounding remainder as the authors do: random pairs get +1 (short) or -1 (over)', () => {
    // Equilateral triangle: each pair weighs 1/3.
    const prototypes = new Map([
      [0, [0, 0]],
      [1, [1, 0]],
      [2, [0.5, Math.sqrt(3) / 2]],
    ]);
    const receivers = new Set<number>();
    for (let seed = 0; seed < 30; seed++) {
      // 10 / 3 = 3.33 -> 3 + 3 + 3 = 9, one short.
      const short = allocatePairs(prototypes, 10, Rng.derive(seed, 'fix')).map((p) => p.n);
      expect([...short].sort()).toEqual([3, 3, 4]);
      receivers.add(short.indexOf(4));
      // 11 / 3 = 3.67 -> 4 + 4 + 4 = 12, one over.
      expect(allocatePairs(prototypes, 11, Rng.derive(seed, 'fix')).map((p) => p.n).sort()).toEqual([3, 4, 4]);
    }
    expect(receivers.size).toBe(3);
  });

  it('handles invalid input: fewer than 2 classes, bad counts, coincident prototypes', () => {
    const rng = Rng.derive(0, 'bad');
    expect(() => allocatePairs(new Map([[1, [0, 1]]]), 5, rng)).toThrow(/at least 2 classes/);
    expect(() => allocatePairs(new Map(), 1, rng)).toThrow(/at least 2 classes/);
    expect(allocatePairs(new Map([[1, [0, 1]]]), 0, rng)).toEqual([]);
    const two = new Map([
      [1, [0, 1]],
      [2, [1, 1]],
    ]);
    expect(() => allocatePairs(two, -1, rng)).toThrow(/non-negative integer/);
    expect(() => allocatePairs(two, 2.5, rng)).toThrow(/non-negative integer/);
    expect(() => allocatePairs(new Map([[1, [0, 1]], [2, [1]]]), 3, rng)).toThrow(/values/);
    expect(() => allocatePairs(new Map([[1, [0, NaN]], [2, [1, 1]]]), 3, rng)).toThrow(/finite/);
    // Classes 1 and 2 coincide: infinite inverse distance takes all the samples.
    const coincident = new Map([
      [1, [0, 1]],
      [2, [0, 1]],
      [3, [5, 5]],
    ]);
    expect(allocatePairs(coincident, 7, rng)).toEqual([
      { a: 1, b: 2, n: 7 },
      { a: 1, b: 3, n: 0 },
      { a: 2, b: 3, n: 0 },
    ]);
  });

  it('rounds ties to even, as torch.round and np.round', () => {
    expect([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, 4, 0, -2, 2, 3]);
  });
});

describe('APF mixup plans and loss', () => {
  it('pair mixup: slots of the right classes, drawn with replacement, one coin per pair', () => {
    const bufferLabels = [0, 0, 1, 1, 1, 2, 5];
    const pairs: PairCount[] = [
      { a: 0, b: 1, n: 30 },
      { a: 0, b: 2, n: 0 },
      { a: 1, b: 5, n: 20 },
    ];
    let mixedPairs = 0;
    const trials = 400;
    for (let seed = 0; seed < trials; seed++) {
      const plan = planPairMixup(pairs, bufferLabels, Rng.derive(seed, 'pairs'), { p: 0.6, alpha: 0.4 });
      expect(plan.first.length).toBe(50);
      for (let i = 0; i < 50; i++) {
        expect(bufferLabels[plan.first[i]!]).toBe(plan.a[i]);
        expect(bufferLabels[plan.second[i]!]).toBe(plan.b[i]);
        expect(plan.lambda[i]).toBeGreaterThanOrEqual(0);
        expect(plan.lambda[i]).toBeLessThanOrEqual(1);
      }
      expect(Array.from(plan.a.slice(0, 30)).every((c) => c === 0) && Array.from(plan.a.slice(30)).every((c) => c === 1)).toBe(true);
      for (const [from, to] of [
        [0, 30],
        [30, 50],
      ] as const) {
        const lambdas = Array.from(plan.lambda.slice(from, to));
        const mixed = lambdas.filter((l) => l > 0).length;
        // One coin per pair: all of a pair's samples are mixed, or none.
        expect(mixed === 0 || mixed === to - from).toBe(true);
        if (mixed) mixedPairs++;
      }
      // With replacement: 30 draws from class 0's two slots.
      expect(new Set(plan.first.slice(0, 30)).size).toBeLessThanOrEqual(2);
    }
    // 800 coins with p = 0.6: std 0.017.
    expect(Math.abs(mixedPairs / (2 * trials) - 0.6)).toBeLessThan(0.07);
    expect(planPairMixup(pairs, bufferLabels, Rng.derive(1, 'pairs'))).toEqual(planPairMixup(pairs, bufferLabels, Rng.derive(1, 'pairs')));
  });

  it('pair mixup: a class no longer in the buffer is replaced by one that is', () => {
    const plan = planPairMixup([{ a: 4, b: 8, n: 12 }], [4, 4, 6, 7], Rng.derive(0, 'gone'), { p: 1 });
    expect(Array.from(plan.a).every((c) => c === 4)).toBe(true);
    const substitute = plan.b[0]!;
    expect([4, 6, 7]).toContain(substitute);
    expect(Array.from(plan.b).every((c) => c === substitute)).toBe(true);
    expect(() => planPairMixup([{ a: 0, b: 1, n: 1 }], [], Rng.derive(0, 'empty'))).toThrow(/empty/);
  });

  it('base mixup: a subset without replacement, partners from it, lambda ~ U(lower, upper) gated by p (kornia 0.6.8: batch coin x sample coin)', () => {
    const labels = Array.from({ length: 64 }, (_, i) => i % 9);
    const frequencies = (doubleGate: boolean) => {
      let mixed = 0;
      let untouched = 0;
      const plans = 300;
      for (let seed = 0; seed < plans; seed++) {
        const plan = planBaseMixup(labels, 48, Rng.derive(seed, 'base', String(doubleGate)), { p: 0.6, lower: 0, upper: 0.6, doubleGate });
        expect(new Set(plan.first).size).toBe(48);
        expect([...plan.second].sort((a, b) => a - b)).toEqual([...plan.first].sort((a, b) => a - b));
        for (let i = 0; i < 48; i++) {
          expect(plan.a[i]).toBe(labels[plan.first[i]!]);
          expect(plan.b[i]).toBe(labels[plan.second[i]!]);
          expect(plan.lambda[i]).toBeLessThan(0.6);
        }
        const count = plan.lambda.filter((l) => l > 0).length;
        mixed += count;
        if (count === 0) untouched++;
      }
      return { perSample: mixed / (plans * 48), untouchedBatches: untouched / plans };
    };
    // Per sample p = 0.6, or p^2 = 0.36 with the double gate (std <= 0.03 from the batch coin).
    const single = frequencies(false);
    expect(Math.abs(single.perSample - 0.6)).toBeLessThan(0.03);
    expect(single.untouchedBatches).toBe(0);
    const double = frequencies(true);
    expect(Math.abs(double.perSample - 0.36)).toBeLessThan(0.07);
    // The batch coin: a fraction 1 - p of the batches is not mixed at all (std 0.028).
    expect(Math.abs(double.untouchedBatches - 0.4)).toBeLessThan(0.1);
    const never = planBaseMixup(labels, 10, Rng.derive(0, 'b'), { p: 0 });
    expect(Array.from(never.lambda).every((l) => l === 0)).toBe(true);
    const always = planBaseMixup(labels, 10, Rng.derive(0, 'b'), { p: 1, lower: 0.2, upper: 0.3 });
    expect(Array.from(always.lambda).every((l) => l >= 0.2 && l < 0.3)).toBe(true);
    expect(() => planBaseMixup(labels, 65, Rng.derive(0, 'b'))).toThrow(/cannot pick/);
  });

  it('planApf: floor(bs * baseRate) replay samples then bs - that pair samples; falls back without 2 classes', () => {
    const replayLabels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 3];
    const bufferLabels = [0, 0, 1, 1, 2, 2, 3, 3];
    const prototypes = new Map([
      [0, [1, 0]],
      [1, [0, 1]],
      [2, [0.7, 0.7]],
      [3, [-1, 0]],
    ]);
    const plan = planApf({ replayLabels, bufferLabels, prototypes, baseRate: 0.75 }, Rng.derive(0, 'apf'));
    expect(plan.fromReplay.first.length).toBe(7);
    expect(plan.fromBuffer.first.length).toBe(3);
    expect(plan.pairs.reduce((s, p) => s + p.n, 0)).toBe(3);
    expect(Array.from(plan.labels.a)).toEqual([...plan.fromReplay.a, ...plan.fromBuffer.a]);
    expect(Array.from(plan.labels.lambda)).toEqual([...plan.fromReplay.lambda, ...plan.fromBuffer.lambda]);
    expect(planApf({ replayLabels, bufferLabels, prototypes }, Rng.derive(0, 'apf'))).toEqual(planApf({ replayLabels, bufferLabels, prototypes }, Rng.derive(0, 'apf')));

    const fallback = planApf({ replayLabels, bufferLabels, prototypes: new Map([[0, [1, 0]]]), baseRate: 0.75 }, Rng.derive(0, 'apf'));
    expect(fallback.fromBuffer.first.length).toBe(0);
    expect([...fallback.fromReplay.first].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(Array.from(fallback.fromReplay.lambda.slice(7))).toEqual([0, 0, 0]);
  });

  it('mixImages and mixupCrossEntropy equal their hand-computed values, and the loss is differentiable', () => {
    noLeak(() => {
      const xa = tf.tensor4d([1, 2, 3, 4], [2, 1, 2, 1]);
      const xb = tf.tensor4d([5, 6, 7, 8], [2, 1, 2, 1]);
      const mixed = mixImages(xa, xb, Float32Array.of(0.25, 0));
      expect(Array.from(mixed.dataSync())).toEqual([2, 3, 3, 4]);
      const logits = tf.tensor2d([
        [1, 2, 0],
        [0, 0, 3],
      ]);
      const labels = { a: Int32Array.of(1, 2), b: Int32Array.of(0, 1), lambda: Float32Array.of(0.25, 0) };
      const loss = mixupCrossEntropy(logits, labels);
      const lse0 = Math.log(Math.E + Math.E ** 2 + 1);
      const lse1 = Math.log(2 + Math.E ** 3);
      const expected = (0.75 * (lse0 - 2) + 0.25 * (lse0 - 1) + (lse1 - 3)) / 2;
      expect(loss.dataSync()[0]).toBeCloseTo(expected, 5);
      const g = tf.grad((l: tf.Tensor) => mixupCrossEntropy(l as tf.Tensor2D, labels))(logits);
      // d/dlogits of row 0 = (softmax - target) / 2, target = 0.25 e0 + 0.75 e1.
      const s = [Math.E, Math.E ** 2, 1].map((v) => v / Math.exp(lse0));
      const row0 = Array.from(g.dataSync().slice(0, 3));
      [s[0]! - 0.25, s[1]! - 0.75, s[2]!].forEach((v, j) => expect(row0[j]).toBeCloseTo(v / 2, 5));
      expect(() => mixupCrossEntropy(logits, { ...labels, a: Int32Array.of(1, 3) })).toThrow(/outside/);
      tf.dispose([xa, xb, mixed, logits, loss, g]);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('Gamma and Beta draws', () => {
  const moments = (draw: () => number, n: number) => {
    let sum = 0;
    let sq = 0;
    const values: number[] = [];
    for (let i = 0; i < n; i++) {
      const v = draw();
      values.push(v);
      sum += v;
      sq += v * v;
    }
    const mean = sum / n;
    return { mean, variance: sq / n - mean * mean, values };
  };

  it('Beta(0.4, 0.4): mean 0.5, variance 0.4^2 / (0.8^2 x 1.8) = 0.1389, values in [0, 1], deterministic', () => {
    const rng = Rng.derive(5, 'beta');
    const { mean, variance, values } = moments(() => drawBeta(rng, 0.4, 0.4), 20000);
    // Standard errors: 0.0026 (mean), <= 0.0015 (variance).
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.012);
    expect(Math.abs(variance - 0.16 / (0.64 * 1.8))).toBeLessThan(0.007);
    expect(values.every((v) => v >= 0 && v <= 1)).toBe(true);
    const again = Rng.derive(5, 'beta');
    expect(values.slice(0, 50)).toEqual(Array.from({ length: 50 }, () => drawBeta(again, 0.4, 0.4)));
    // An asymmetric one: Beta(2, 5) has mean 2/7.
    const asym = Rng.derive(6, 'beta');
    expect(Math.abs(moments(() => drawBeta(asym, 2, 5), 20000).mean - 2 / 7)).toBeLessThan(0.006);
  });

  it('Gamma(k): mean k and variance k, below and above shape 1', () => {
    for (const [k, tolMean, tolVar] of [
      [0.4, 0.02, 0.06],
      [2.5, 0.05, 0.18],
    ] as const) {
      const rng = Rng.derive(7, 'gamma', k);
      const { mean, variance, values } = moments(() => drawGamma(rng, k), 20000);
      expect(Math.abs(mean - k)).toBeLessThan(tolMean);
      expect(Math.abs(variance - k)).toBeLessThan(tolVar);
      expect(values.every((v) => v >= 0)).toBe(true);
    }
    expect(() => drawGamma(Rng.derive(0, 'g'), 0)).toThrow(/positive/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('OnPro augmentation', () => {
  const images = (seed: number, n: number, size: number, channels: number) => tf.randomUniform([n, size, size, channels], 0, 1, 'float32', seed) as tf.Tensor4D;

  it('is deterministic per seed, keeps the shape and the range [0, 1]', () => {
    noLeak(() => {
      for (const channels of [1, 3]) {
        const x = images(1, 16, 12, channels);
        const a = onproAugment(x, Rng.derive(1, 'aug'));
        const b = onproAugment(x, Rng.derive(1, 'aug'));
        const c = onproAugment(x, Rng.derive(2, 'aug'));
        expect(a.shape).toEqual(x.shape);
        expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
        expect(Array.from(a.dataSync())).not.toEqual(Array.from(c.dataSync()));
        const values = a.dataSync();
        expect(values.every((v) => v >= 0 && v <= 1)).toBe(true);
        // White and black stay exactly in range through grey and bilinear sampling.
        const white = tf.ones([8, 6, 6, channels]) as tf.Tensor4D;
        const out = onproAugment(white, Rng.derive(3, 'aug'), { greyP: 1 });
        expect(out.dataSync().every((v) => v === 1)).toBe(true);
        tf.dispose([x, a, b, c, white, out]);
      }
    });
  });

  it('crops within the scale and ratio bounds, inside the image; flips half the time', () => {
    const rng = Rng.derive(8, 'params');
    const size = 28;
    const params = sampleAugmentParams(rng, 5000, size, size);
    let flips = 0;
    let full = 0;
    for (const p of params) {
      const area = (p.width * p.height) / (size * size);
      // Rounding w and h to whole pixels moves the area by up to about half a pixel per side.
      expect(area).toBeGreaterThanOrEqual(0.27);
      expect(area).toBeLessThanOrEqual(1);
      const ratio = p.width / p.height;
      expect(ratio).toBeGreaterThanOrEqual((3 / 4) * 0.9);
      expect(ratio).toBeLessThanOrEqual((4 / 3) / 0.9);
      expect(p.left).toBeGreaterThanOrEqual(0);
      expect(p.top).toBeGreaterThanOrEqual(0);
      expect(p.left + p.width).toBeLessThanOrEqual(size);
      expect(p.top + p.height).toBeLessThanOrEqual(size);
      expect(Number.isInteger(2 * p.left) && Number.isInteger(2 * p.top)).toBe(true);
      if (p.flip) flips++;
      if (p.width === size && p.height === size) full++;
    }
    expect(Math.abs(flips / params.length - 0.5)).toBeLessThan(0.03);
    // The target area is uniform on [0.3, 1]; a try is rejected only when the crop does not fit,
    // which needs area > min(r, 1/r) >= 0.75, so below 0.75 the areas stay uniform: equal
    // counts per 0.1-wide bin (about 700 each, std about 26).
    const bins = [0, 0, 0, 0];
    for (const p of params) {
      const area = (p.width * p.height) / (size * size);
      if (area >= 0.3 && area < 0.7) bins[Math.floor((area - 0.3) / 0.1)]! += 1;
    }
    expect(Math.max(...bins) / Math.min(...bins)).toBeLessThan(1.2);
    expect(Math.min(...bins)).toBeGreaterThan(params.length * 0.1);
    expect(full / params.length).toBeLessThan(0.1);
  });

  it('turns about a quarter of the images grey (3 channels: R = G = B = luma); 1 channel: unchanged but the coin is drawn', () => {
    noLeak(() => {
      const n = 2000;
      const x = images(4, n, 4, 3);
      const params = sampleAugmentParams(Rng.derive(9, 'grey'), n, 4, 4);
      const out = applyAugment(x, params);
      const v = out.dataSync();
      let greyOut = 0;
      for (let i = 0; i < n; i++) {
        let equal = true;
        for (let px = 0; px < 16; px++) {
          const o = (i * 16 + px) * 3;
          if (v[o] !== v[o + 1] || v[o] !== v[o + 2]) equal = false;
        }
        expect(equal).toBe(params[i]!.grey);
        if (equal) greyOut++;
      }
      // Binomial std: sqrt(0.25 x 0.75 / 2000) = 0.0097.
      expect(Math.abs(greyOut / n - 0.25)).toBeLessThan(0.04);
      // The grey value is the luma: a single red pixel, no crop, no flip.
      const red = tf.tensor4d([1, 0, 0], [1, 1, 1, 3]);
      const grey = applyAugment(red, [{ flip: false, grey: true, top: 0, left: 0, height: 1, width: 1 }]);
      Array.from(grey.dataSync()).forEach((g) => expect(g).toBeCloseTo(0.299, 6));
      // One channel: grey on or off gives the same image; the parameters do not depend on the channels.
      const mono = images(5, 3, 6, 1);
      const p = sampleAugmentParams(Rng.derive(1, 'mono'), 3, 6, 6);
      const on = applyAugment(mono, p.map((q) => ({ ...q, grey: true })));
      const off = applyAugment(mono, p.map((q) => ({ ...q, grey: false })));
      expect(Array.from(on.dataSync())).toEqual(Array.from(off.dataSync()));
      tf.dispose([x, out, red, grey, mono, on, off]);
    });
  });

  it('resamples like torch grid_sample (align_corners False, reflection) with the authors\' crop parameters', () => {
    noLeak(() => {
      const size = 8;
      const x = images(6, 1, size, 1);
      const pixels = Array.from(x.dataSync());
      const identity = applyAugment(x, [{ flip: false, grey: false, top: 0, left: 0, height: size, width: size }]);
      expect(Array.from(identity.dataSync())).toEqual(pixels);
      const flipped = applyAugment(x, [{ flip: true, grey: false, top: 0, left: 0, height: size, width: size }]);
      const reversed = tf.reverse(x, 2);
      expect(Array.from(flipped.dataSync())).toEqual(Array.from(reversed.dataSync()));

      // torch: theta = [[w/W, 0, kx/W], [0, h/H, ky/H]] in normalised coordinates; then flip first.
      const reflectThenClip = (u: number) => {
        let c = u;
        const lo = -0.5;
        const span = size;
        c = Math.abs(c - lo) % (2 * span);
        c = c > span ? 2 * span - c : c;
        return Math.min(Math.max(c + lo, 0), size - 1);
      };
      const sample = (img: (r: number, c: number) => number, v: number, u: number) => {
        const r = reflectThenClip(v);
        const c = reflectThenClip(u);
        const r0 = Math.floor(r);
        const c0 = Math.floor(c);
        const r1 = Math.min(r0 + 1, size - 1);
        const c1 = Math.min(c0 + 1, size - 1);
        const fr = r - r0;
        const fc = c - c0;
        return (1 - fr) * ((1 - fc) * img(r0, c0) + fc * img(r0, c1)) + fr * ((1 - fc) * img(r1, c0) + fc * img(r1, c1));
      };
      for (const [w, h, kx, ky, flip] of [
        [5, 6, -3, 2, false],
        [8, 7, 0, -1, true],
        [3, 3, 5, -5, true],
      ] as const) {
        const params: AugmentParams = { flip, grey: false, width: w, height: h, left: (size - w + kx) / 2, top: (size - h + ky) / 2 };
        const out = applyAugment(x, [params]);
        const got = out.dataSync();
        const source = (r: number, c: number) => pixels[r * size + (flip ? size - 1 - c : c)]!;
        for (let i = 0; i < size; i++) {
          for (let j = 0; j < size; j++) {
            const xn = (w / size) * ((2 * j + 1) / size - 1) + kx / size;
            const yn = (h / size) * ((2 * i + 1) / size - 1) + ky / size;
            const expected = sample(source, ((yn + 1) * size - 1) / 2, ((xn + 1) * size - 1) / 2);
            expect(got[i * size + j]).toBeCloseTo(expected, 5);
          }
        }
        out.dispose();
      }
      tf.dispose([x, identity, flipped, reversed]);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('OCM rotation variants', () => {
  /** Variant r = 4 q + h of a square image by index formulas: halves turned (h), then quarter turns (q: 0, 180, 90, 270 ccw). */
  function variantReference(img: number[][], r: number): number[][] {
    const n = img.length;
    const half = n / 2;
    const h = r % 4;
    const q = Math.floor(r / 4);
    const turnLeft = h === 1 || h === 2;
    const turnRight = h === 2 || h === 3;
    const halves = img.map((row, i) =>
      row.map((_, j) => {
        if (j < half && turnLeft) return img[n - 1 - i]![half - 1 - j]!;
        if (j >= half && turnRight) return img[n - 1 - i]![half + (n - 1 - j)]!;
        return img[i]![j]!;
      }),
    );
    const k = [0, 2, 1, 3][q]!;
    return halves.map((row, i) =>
      row.map((_, j) => {
        if (k === 0) return halves[i]![j]!;
        if (k === 2) return halves[n - 1 - i]![n - 1 - j]!;
        if (k === 1) return halves[j]![n - 1 - i]!; // counter-clockwise: the right column goes on top
        return halves[n - 1 - j]![i]!;
      }),
    );
  }

  it('16 distinct variants in the authors\' order, variant-major, with labels y + K r', () => {
    noLeak(() => {
      const size = 4;
      const arange = Array.from({ length: 2 * size * size }, (_, i) => i);
      const x = tf.tensor4d(arange, [2, size, size, 1]);
      const { images, variant } = rotationVariants(x, 16);
      expect(images.shape).toEqual([32, size, size, 1]);
      const v = images.arraySync() as number[][][][];
      const flat = (img: number[][][]) => img.map((row) => row.map((px) => px[0]!));
      for (let r = 0; r < 16; r++) {
        for (let i = 0; i < 2; i++) {
          const source = Array.from({ length: size }, (_, a) => arange.slice(i * 16 + a * size, i * 16 + (a + 1) * size));
          expect(flat(v[r * 2 + i]!)).toEqual(variantReference(source, r));
          expect(variant[r * 2 + i]).toBe(r);
        }
      }
      // Spot checks written out: left half turned (r = 1) and a quarter turn counter-clockwise (r = 8).
      expect(flat(v[2]!)[0]).toEqual([13, 12, 2, 3]);
      expect(flat(v[16]!)[0]).toEqual([3, 7, 11, 15]);
      expect(new Set(Array.from({ length: 16 }, (_, r) => JSON.stringify(v[r * 2]))).size).toBe(16);
      expect(Array.from(rotationLabels([3, 7], 10, 16))).toEqual(Array.from({ length: 32 }, (_, k) => [3, 7][k % 2]! + 10 * Math.floor(k / 2)));
      tf.dispose([x, images]);
    });
  });

  it('rotations 1 is the identity (a copy) with labels y; 16 needs square images of even size', () => {
    noLeak(() => {
      const x = tf.randomUniform([3, 6, 6, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const { images, variant } = rotationVariants(x, 1);
      expect(images).not.toBe(x);
      expect(Array.from(images.dataSync())).toEqual(Array.from(x.dataSync()));
      expect(Array.from(variant)).toEqual([0, 0, 0]);
      expect(Array.from(rotationLabels([4, 1, 2], 10, 1))).toEqual([4, 1, 2]);
      const odd = tf.zeros([1, 5, 5, 1]) as tf.Tensor4D;
      const oblong = tf.zeros([1, 4, 6, 1]) as tf.Tensor4D;
      expect(() => rotationVariants(odd, 16)).toThrow(/square images of even size/);
      expect(() => rotationVariants(oblong, 16)).toThrow(/square images of even size/);
      expect(() => rotationVariants(x, 4 as 16)).toThrow(/1 or 16/);
      tf.dispose([x, images, odd, oblong]);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('OCM supervised NT-Xent', () => {
  // Two samples of classes 0 and 1 along the axes, both views equal.
  const axes = [
    [1, 0],
    [0, 1],
    [1, 0],
    [0, 1],
  ];

  it('equals the hand-computed value on a tiny example (stream and replay variants)', () => {
    noLeak(() => {
      const z = tf.tensor2d(axes);
      // T = 1, stream: row i's denominator excludes itself: e^0 + e^1 + e^0; its only other
      // positive is its other view (sim 1): L = log(2 + e) - 1. Instance term L, supervised
      // term 2 x mean_i (1/2) L = L.
      const stream = supConLoss(z, [0, 1], { temperature: 1 });
      const l = Math.log(2 + Math.E) - 1;
      expect(stream.dataSync()[0]).toBeCloseTo(2 * l, 5);
      // Replay: the denominator keeps itself (2e + 2) and both itself and its other view are
      // positives (weight 1/2 each, both -log(e / (2e + 2))).
      const replay = supConLoss(z, [0, 1], { temperature: 1, variant: 'replay' });
      expect(replay.dataSync()[0]).toBeCloseTo(Math.log(2 * Math.E + 2) - 1, 5);
      // The two views may be passed separately.
      const v1 = tf.tensor2d(axes.slice(0, 2));
      const v2 = tf.tensor2d(axes.slice(2));
      const split = supConLoss([v1, v2], [0, 1], { temperature: 1 });
      expect(split.dataSync()[0]).toBeCloseTo(2 * l, 6);
      tf.dispose([z, stream, replay, v1, v2, split]);
    });
  });

  it('equals the formula on a random batch with repeated labels at T = 0.07', () => {
    noLeak(() => {
      const rng = Rng.derive(10, 'supcon');
      const z = randomMatrix(rng, 10, 3);
      const labels = [4, 1, 4, 4, 2];
      for (const variant of ['stream', 'replay'] as const) {
        const got = tf.tidy(() => supConLoss(tf.tensor2d(z), labels, { variant }).dataSync()[0]!);
        const want = ntXentReference(z, labels, 0.07, variant);
        expect(Math.abs(got - want)).toBeLessThan(1e-4 * Math.max(1, want));
      }
    });
  });

  it('has gradients that match finite differences', () => {
    noLeak(() => {
      const rng = Rng.derive(11, 'supcon');
      const z = randomMatrix(rng, 6, 3);
      const labels = [0, 1, 0];
      expectGradientMatches((x) => supConLoss(x, labels, { temperature: 0.5 }), z, 1e-2);
      expectGradientMatches((x) => supConLoss(x, labels, { temperature: 0.5, variant: 'replay' }), z, 1e-2);
      expectGradientMatches((x) => supConLoss(x, labels, { temperature: 0.2 }), z, 2e-3);
    });
  });

  it('instanceSimilarity adds the feature window and the weight; drawFeatureOffset stays in [0, F - D)', () => {
    noLeak(() => {
      const rng = Rng.derive(12, 'sim');
      const zv = randomMatrix(rng, 4, 2);
      const fv = randomMatrix(rng, 4, 5);
      const z = tf.tensor2d(zv);
      const f = tf.tensor2d(fv);
      const sim = instanceSimilarity(z, { features: f, featureOffset: 2, weight: 0.5 });
      const zn = zv.map(normalise);
      const fn = fv.map(normalise);
      const got = sim.arraySync();
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 4; j++) {
          const expected = 0.5 * (dot(zn[i]!, zn[j]!) + dot(zn[i]!, fn[j]!.slice(2, 4)));
          expect(got[i]![j]).toBeCloseTo(expected, 5);
        }
      }
      // Its loss is differentiable with respect to both inputs.
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        supervisedNtXent(instanceSimilarity(a as tf.Tensor2D, { features: b as tf.Tensor2D, featureOffset: 3 }), [0, 1]),
      )([z, f]);
      expect(grads.every((g) => g.dataSync().every(Number.isFinite))).toBe(true);
      expect(() => instanceSimilarity(z, { features: f, featureOffset: 4 })).toThrow(/outside/);
      const offsets = new Set(Array.from({ length: 2000 }, () => drawFeatureOffset(rng, 512, 128)));
      expect(Math.min(...offsets)).toBe(0);
      expect(Math.max(...offsets)).toBe(383);
      expect(drawFeatureOffset(rng, 128, 128)).toBe(0);
      expect(() => drawFeatureOffset(rng, 64, 128)).toThrow(/cannot hold/);
      tf.dispose([z, f, sim, ...grads]);
    });
  });
});
