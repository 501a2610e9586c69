import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { EataMethod, eataOptions, eataSampleWeights, fisherPenalty } from '../src/methods/eata.js';
import { createMethod } from '../src/methods/registry.js';
import type { MethodContext } from '../src/methods/types.js';
import type { Network } from '../src/models/network.js';
import {
  changedWeights,
  expectCttaError,
  fmnistCleanImages,
  fmnistImages,
  maxAbsDiff,
  methodContext,
  mixedBatch,
  noiseBatch,
  sourceNetwork,
  tensorValues,
  useFashionMnist,
  useWasm,
  weightValues,
} from './helpers.js';

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
});

const E0 = 0.4 * Math.log(10);

const context = (cleanCalls: number[] = []): Promise<MethodContext> => methodContext({ cleanImages: fmnistCleanImages(cleanCalls) });

/** Per-sample entropies and probabilities of `net` on `x` (batch statistics). */
const entropiesOf = (net: Network, x: tf.Tensor4D) =>
  tf.tidy(() => {
    const logp = tf.logSoftmax(net.logits(x));
    return { h: Array.from(tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1)).dataSync()), p: Array.from(tf.exp(logp).dataSync()) };
  });

/** Gradient of sum_i c_i H_i / denominator (c constant) w.r.t. the norm affine parameters. */
const weightedEntropyGrad = (net: Network, x: tf.Tensor4D, c: number[], denominator: number) => {
  const params = net.normAffineVariables();
  const { value, grads } = tf.variableGrads(() => {
    const logp = tf.logSoftmax(net.logits(x));
    const h = tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1));
    return tf.div(tf.sum(tf.mul(h, tf.tensor1d(c))), denominator) as tf.Scalar;
  }, params);
  const out = params.map((p) => Float32Array.from(grads[p.name]!.dataSync()));
  tf.dispose([value, ...Object.values(grads)]);
  return out;
};

describe('eataSampleWeights', () => {
  const probs = [
    [0.9, 0.05, 0.05],
    [0.4, 0.3, 0.3],
    [0.05, 0.9, 0.05],
    [0.1, 0.1, 0.8],
  ];
  const flat = probs.flat();

  it('keeps samples below the entropy margin, weighted by 1/exp(H - E0), and starts the average from them', () => {
    const h = [0.2, 1.5, 0.5, 0.99];
    const s = eataSampleWeights(h, flat, 3, 1.0, 0.05, null);
    expect(s.reliable).toBe(3);
    expect(s.selected).toBe(3); // no redundancy filter before an average exists
    expect(s.weights[1]).toBe(0);
    for (const i of [0, 2, 3]) expect(s.weights[i]).toBeCloseTo(1 / Math.exp(h[i]! - 1.0), 6);
    for (let c = 0; c < 3; c++) expect(s.average![c]).toBeCloseTo((probs[0]![c]! + probs[2]![c]! + probs[3]![c]!) / 3, 6);
  });

  it('drops reliable samples whose softmax is too similar to the average, and moves the average 0.9/0.1', () => {
    const average = new Float32Array([1, 0, 0]);
    const h = [0.1, 0.1, 0.1, 0.1];
    const s = eataSampleWeights(h, flat, 3, 1.0, 0.2, average);
    // cosines with [1,0,0]: 0.997, 0.707, 0.055, 0.123 -> only samples 2 and 3 are < 0.2.
    expect(s.reliable).toBe(4);
    expect(s.selected).toBe(2);
    expect([s.weights[0], s.weights[1]]).toEqual([0, 0]);
    expect(s.weights[2]).toBeGreaterThan(0);
    for (let c = 0; c < 3; c++) expect(s.average![c]).toBeCloseTo(0.9 * average[c]! + 0.1 * ((probs[2]![c]! + probs[3]![c]!) / 2), 6);
    expect(Array.from(average)).toEqual([1, 0, 0]); // pure: the input is not changed
  });

  it('leaves the average as it was when nothing is selected', () => {
    const average = new Float32Array([0.2, 0.3, 0.5]);
    const s = eataSampleWeights([2, 2, 2, 2], flat, 3, 1.0, 0.05, average);
    expect(s.selected).toBe(0);
    expect(Array.from(s.weights)).toEqual([0, 0, 0, 0]);
    expect(s.average).toBe(average);
    expect(eataSampleWeights([2, 2, 2, 2], flat, 3, 1.0, 0.05, null).average).toBeNull();
  });
});

describe('EATA', () => {
  it('one step = SGD on the re-weighted entropy of the selected samples only; only norm gamma/beta change', async () => {
    const c = await context();
    const eata = createMethod('eata', { fisherAlpha: 0, lr: 1, momentum: 0 });
    await eata.init(c);
    const before = weightValues(c.network);
    const ref = await sourceNetwork();
    const x = mixedBatch(0, 11);

    // The test's own selection: first batch, so only the entropy margin applies.
    const { h, p } = entropiesOf(ref, x);
    const selected = h.map((v) => v < E0);
    const count = selected.filter(Boolean).length;
    expect(count).toBeGreaterThan(1);
    expect(count).toBeLessThan(h.length - 1);
    const coeff = h.map((v, i) => (selected[i] ? Math.exp(E0 - v) : 0));
    const g = weightedEntropyGrad(ref, x, coeff, count);
    // Unselected samples matter: the unweighted mean-entropy gradient differs.
    const gAll = weightedEntropyGrad(ref, x, h.map(() => 1), h.length);
    expect(Math.max(...g.flatMap((gi, i) => Array.from(gi, (v, j) => Math.abs(v - gAll[i]![j]!))))).toBeGreaterThan(1e-2);

    const probs = await eata.predict(x);
    expect(maxAbsDiff(probs, tf.tensor2d(p, [16, 10]))).toBeLessThan(1e-5);
    await eata.adapt(x);
    const params = c.network.normAffineVariables();
    const theta0 = params.map((v) => before.get(nameOf(c.network, v))!);
    params.forEach((v, i) => {
      const now = v.dataSync();
      let worst = 0;
      for (let j = 0; j < now.length; j++) worst = Math.max(worst, Math.abs(now[j]! - (theta0[i]![j]! - g[i]![j]!)));
      expect(worst, v.name).toBeLessThan(2e-4);
    });
    const changed = changedWeights(c.network, before);
    expect(changed.length).toBe(params.length);
    expect(changed.every((k) => /norm\d?\/(gamma|beta)$/.test(k))).toBe(true);

    // The probability average is the mean softmax of the selected samples.
    const average = (eata as EataMethod).probabilityAverage!;
    for (let k = 0; k < 10; k++) {
      let s = 0;
      for (let i = 0; i < 16; i++) if (selected[i]) s += p[i * 10 + k]!;
      expect(average[k]).toBeCloseTo(s / count, 5);
    }
    tf.dispose([x, probs]);
    eata.dispose();
    c.network.dispose();
    ref.dispose();
  });

  it('a batch with every entropy above the margin takes no step at all (regulariser included)', async () => {
    const c = await context();
    const eata = new EataMethod(eataOptions.parse({ eMargin: 0.05, fisherAlpha: 1000, fisherSize: 32, fisherBatchSize: 16 }));
    await eata.init(c);
    // Move away from theta0 so the regulariser alone would have a gradient.
    for (const v of c.network.normAffineVariables()) tf.tidy(() => v.assign(tf.add(v, 0.1)));
    const before = weightValues(c.network);
    const x = noiseBatch(4);
    const ref = await sourceNetwork();
    expect(Math.min(...entropiesOf(ref, x).h)).toBeGreaterThan(0.05);
    (await eata.predict(x)).dispose();
    await eata.adapt(x);
    expect(changedWeights(c.network, before)).toEqual([]);
    expect(eata.counts).toMatchObject({ batches: 1, reliable: 0, selected: 0, steps: 0 });
    expect(eata.probabilityAverage).toBeNull();
    x.dispose();
    eata.dispose();
    c.network.dispose();
    ref.dispose();
  });

  it('Fisher information = mean over batches of squared pseudo-label cross-entropy gradients, on fisherSize clean images', async () => {
    const calls: number[] = [];
    const c = await context(calls);
    const eata = new EataMethod(eataOptions.parse({ fisherSize: 40, fisherBatchSize: 16 }));
    await eata.init(c);
    expect(calls).toEqual([40]);
    const ref = await sourceNetwork();
    const params = ref.normAffineVariables();
    const sums = params.map((p) => new Float64Array(p.size));
    const images = fmnistImages(5000, 40);
    for (const [start, size] of [[0, 16], [16, 16], [32, 8]] as const) {
      const xb = images.slice([start, 0, 0, 0], [size, -1, -1, -1]);
      const labels = tf.tidy(() => tf.oneHot(tf.argMax(ref.logits(xb), 1), 10));
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(labels, ref.logits(xb)) as tf.Scalar, params);
      params.forEach((p, i) => grads[p.name]!.dataSync().forEach((v, j) => (sums[i]![j]! += v * v)));
      tf.dispose([xb, labels, value, ...Object.values(grads)]);
    }
    const fisher = eata.fisherInformation;
    expect(fisher.length).toBe(params.length);
    let largest = 0;
    fisher.forEach((f, i) => {
      const got = f.dataSync();
      got.forEach((v, j) => {
        const want = sums[i]![j]! / 3;
        largest = Math.max(largest, want);
        expect(Math.abs(v - want)).toBeLessThan(1e-4 * Math.abs(want) + 1e-9);
      });
    });
    expect(largest).toBeGreaterThan(1e-6);
    images.dispose();
    eata.dispose();
    c.network.dispose();
    ref.dispose();
  });

  it('the regulariser gradient is 2 alpha F (theta - theta0), and the step adds it to the entropy gradient', async () => {
    // The helper, against the analytic gradient.
    const p = [tf.variable(tf.tensor1d([0.5, -1, 2])), tf.variable(tf.tensor1d([3, 0]))];
    const f = [tf.tensor1d([0.1, 2, 0.5]), tf.tensor1d([1, 4])];
    const a = [tf.tensor1d([0, 0, 1]), tf.tensor1d([1, 1])];
    const { value, grads } = tf.variableGrads(() => fisherPenalty(p, f, a, 7), p);
    expect(value.dataSync()[0]).toBeCloseTo(7 * (0.1 * 0.25 + 2 * 1 + 0.5 * 1 + 1 * 4 + 4 * 1), 4);
    expect(Array.from(grads[p[0]!.name]!.dataSync())).toEqual([0.7, -28, 7].map((v) => expect.closeTo(v, 4)));
    expect(Array.from(grads[p[1]!.name]!.dataSync())).toEqual([28, -56].map((v) => expect.closeTo(v, 4)));
    tf.dispose([...p, ...f, ...a, value, ...Object.values(grads)]);

    // In the method: theta moved by delta from theta0, one plain SGD step.
    const c = await context();
    const alpha = 5000;
    const eata = new EataMethod(eataOptions.parse({ fisherAlpha: alpha, fisherSize: 32, fisherBatchSize: 16, lr: 1, momentum: 0 }));
    await eata.init(c);
    const params = c.network.normAffineVariables();
    const delta = params.map((v, i) => tf.tidy(() => tf.mul(tf.sin(tf.range(0, v.size).add(i)), 0.05)));
    params.forEach((v, i) => tf.tidy(() => v.assign(tf.add(v, delta[i]!))));
    const theta = tensorValues(params);
    const F = tensorValues(eata.fisherInformation);
    const ref = await sourceNetwork();
    ref.copyWeightsFrom(c.network);
    const x = mixedBatch(100, 12);
    const { h } = entropiesOf(ref, x);
    const count = h.filter((v) => v < E0).length;
    expect(count).toBeGreaterThan(0);
    const gEnt = weightedEntropyGrad(ref, x, h.map((v) => (v < E0 ? Math.exp(E0 - v) : 0)), count);
    const d = tensorValues(delta);
    const penalty = F.map((fi, i) => Array.from(fi, (v, j) => 2 * alpha * v * d[i]![j]!));
    // The regulariser is a visible part of the step.
    expect(Math.max(...penalty.flat().map(Math.abs))).toBeGreaterThan(1e-3);
    (await eata.predict(x)).dispose();
    await eata.adapt(x);
    params.forEach((v, i) => {
      const now = v.dataSync();
      for (let j = 0; j < now.length; j++) {
        const want = theta[i]![j]! - (gEnt[i]![j]! + penalty[i]![j]!);
        expect(Math.abs(now[j]! - want), `${v.name}[${j}]`).toBeLessThan(2e-4 + 1e-4 * Math.abs(penalty[i]![j]!));
      }
    });
    tf.dispose([x, ...delta]);
    eata.dispose();
    c.network.dispose();
    ref.dispose();
  });

  it('the redundancy filter uses the average of earlier selected samples', async () => {
    const x1 = fmnistImages(200, 16);
    const x2 = fmnistImages(300, 16);
    // Batch 1 selects by entropy only; the average and batch 2's probabilities do not depend on
    // dMargin. A first run measures batch 2's cosines, to pick a dMargin that splits them.
    const probe = async (dMargin?: number) => {
      const c = await context();
      const eata = new EataMethod(eataOptions.parse({ fisherAlpha: 0, dMargin }));
      await eata.init(c);
      (await eata.predict(x1)).dispose();
      await eata.adapt(x1);
      const average = eata.probabilityAverage!;
      const probs = await eata.predict(x2);
      const p = Float32Array.from(probs.dataSync());
      probs.dispose();
      const ref = await sourceNetwork();
      ref.copyWeightsFrom(c.network);
      const { h } = entropiesOf(ref, x2);
      ref.dispose();
      const norm = Math.hypot(...average);
      const cosines = h.map((v, i) => {
        const row = Array.from(p.slice(i * 10, i * 10 + 10));
        return v < E0 ? row.reduce((s, q, k) => s + q * average[k]!, 0) / (Math.hypot(...row) * norm) : NaN;
      });
      return { c, eata, average, p, cosines };
    };
    const first = await probe();
    expect(first.average).not.toBeNull();
    first.eata.dispose();
    first.c.network.dispose();
    const sorted = first.cosines.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
    expect(sorted.length).toBeGreaterThan(3);
    const mid = Math.floor(sorted.length / 2);
    const dMargin = (sorted[mid - 1]! + sorted[mid]!) / 2;

    const { c, eata, average, p, cosines } = await probe(dMargin);
    const keep = cosines.map((v) => v < dMargin); // NaN (unreliable) compares false
    const kept = keep.filter(Boolean).length;
    expect(kept).toBe(mid);
    await eata.adapt(x2);
    expect(eata.counts).toMatchObject({ batches: 2, steps: 2 });
    expect(eata.counts.selected).toBe(eata.counts.reliable - (sorted.length - mid));
    const next = eata.probabilityAverage!;
    for (let k = 0; k < 10; k++) {
      let s = 0;
      keep.forEach((on, i) => (s += on ? p[i * 10 + k]! : 0));
      expect(next[k]).toBeCloseTo(0.9 * average[k]! + 0.1 * (s / kept), 5);
    }
    tf.dispose([x1, x2]);
    eata.dispose();
    c.network.dispose();
  });

  it('needs clean images unless fisherAlpha is 0 (ETA)', async () => {
    const c = await context();
    const { cleanImages: _omit, ...withoutClean } = c;
    await expectCttaError(() => createMethod('eata').init(withoutClean), /"clean".*fisherAlpha=0/);
    const eta = createMethod('eata', { fisherAlpha: 0 });
    await eta.init(withoutClean);
    eta.dispose();
    c.network.dispose();
  });

  it('episodic: every batch starts from the source weights, the average carries over', async () => {
    const c = await context();
    const eata = createMethod('eata', { fisherAlpha: 0, lr: 0.05, episodic: true }) as EataMethod;
    await eata.init(c);
    const x = mixedBatch(600, 5);
    const p1 = await eata.predict(x);
    await eata.adapt(x);
    const p2 = await eata.predict(x);
    expect(maxAbsDiff(p1, p2)).toBeLessThan(1e-6);
    await eata.adapt(x);
    expect(eata.counts.steps).toBe(2);
    expect(eata.probabilityAverage).not.toBeNull();
    tf.dispose([x, p1, p2]);
    eata.dispose();
    c.network.dispose();
  });

  it('reset restores the source; no tensor is leaked by init, predict, adapt, reset and dispose', async () => {
    const c = await context();
    const start = tf.memory().numTensors;
    const eata = createMethod('eata', { fisherSize: 32, fisherBatchSize: 16, lr: 0.05 });
    await eata.init(c);
    const source = weightValues(c.network);
    for (let b = 0; b < 3; b++) {
      const x = mixedBatch(400 + 16 * b, b);
      (await eata.predict(x)).dispose();
      await eata.adapt(x);
      x.dispose();
    }
    expect(changedWeights(c.network, source).length).toBeGreaterThan(0);
    expect(eata.stateBytes()).toBeGreaterThan(c.network.weightBytes());
    await eata.reset();
    expect(changedWeights(c.network, source)).toEqual([]);
    expect((eata as EataMethod).probabilityAverage).toBeNull();
    eata.dispose();
    expect(tf.memory().numTensors).toBe(start);
    c.network.dispose();
  });
});

/** The stable name of a network variable (the key of namedWeights). */
function nameOf(net: Network, v: tf.Variable): string {
  for (const [k, w] of net.namedWeights()) if (w === v) return k;
  throw new Error(`variable ${v.name} not found`);
}
