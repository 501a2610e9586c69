/**
 * The analytic methods (ACIL, AEF-OCL, DS-AL) on the shipped Fashion-MNIST model and real test
 * images: their defining properties (predictions independent of the stream's batch size; AEF-OCL's
 * real-data state untouched by balancing, and no pseudo-feature on balanced data; DS-AL with
 * C = 0 is ACIL), the interface (probabilities over the dataset's classes, labels required,
 * evaluate changes nothing, reset, no tensor leaks, stateBytes), and the method contract.
 *
 * Most tests use a 256-wide buffer layer: the properties do not depend on the width, and a fitted
 * row costs about 1.5 d^2 multiply-adds. The contract runs with the defaults (2048).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcilMethod } from '../src/methods/analytic/acil.js';
import { AefOclMethod } from '../src/methods/analytic/aef-ocl.js';
import type { AnalyticMethod, AnalyticOptions } from '../src/methods/analytic/analytic-method.js';
import { BufferLayer, activate } from '../src/methods/analytic/buffer-layer.js';
import { DsAlMethod } from '../src/methods/analytic/ds-al.js';
import { type Matrix, RecursiveRidge, type RidgeSnapshot } from '../src/methods/analytic/recursive-ridge.js';
import { createMethod, resolveMethodOptions } from '../src/methods/registry.js';
import { Rng } from '../src/util/rng.js';
import { expectCttaError, fmnistImages, fmnistLabels, methodContext, rejection, relativeError, useFashionMnist, useWasm } from './helpers.js';

const D = 256;
const K = 10;
/** Images the streams draw from (test split 0..POOL-1), and held-out images from 3000 on. */
const POOL = 1200;
let pool: tf.Tensor4D;
let poolLabels: Int32Array;
/** Indices into the pool of each class, in order. */
const byClass: number[][] = [];

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
  pool = fmnistImages(0, POOL);
  poolLabels = Int32Array.from(fmnistLabels(0, POOL).dataSync());
  for (let c = 0; c < K; c++) byClass.push([...poolLabels.keys()].filter((i) => poolLabels[i] === c));
});

afterAll(() => {
  pool?.dispose();
});

type Analytic = AnalyticMethod<AnalyticOptions>;

/** A method made as the runner makes it (Fashion-MNIST defaults row), initialised on a fresh copy of the model. */
async function fresh<M extends Analytic = Analytic>(name: string, options: Record<string, unknown> = {}) {
  const ctx = await methodContext({ dataset: 'fashion-mnist' });
  const method = createMethod(name, { bufferSize: D, ...options }, 'fashion-mnist') as unknown as M;
  await method.init(ctx);
  return {
    method,
    done: () => {
      method.dispose();
      ctx.network.dispose();
    },
  };
}

/** Pool indices as a batch of images and labels. */
function batch(indices: readonly number[]): { x: tf.Tensor4D; y: tf.Tensor1D } {
  return {
    x: tf.gather(pool, Int32Array.from(indices)) as tf.Tensor4D,
    y: tf.tensor1d(Int32Array.from(indices, (i) => poolLabels[i]), 'int32'),
  };
}

/**
 * Streams `indices` prequentially in batches of `sizes` (predict, then adapt with the labels);
 * `after(b)` runs after batch b's adapt. Returns the predictions, as read before each adapt.
 */
async function stream(method: Analytic, indices: readonly number[], sizes: readonly number[], after?: (b: number, labels: number[]) => void | Promise<void>): Promise<Float32Array[]> {
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(indices.length);
  const predictions: Float32Array[] = [];
  let at = 0;
  for (const [b, n] of sizes.entries()) {
    const part = indices.slice(at, at + n);
    at += n;
    const { x, y } = batch(part);
    const p = await method.predict(x);
    predictions.push(Float32Array.from(p.dataSync()));
    await method.adapt(x, y);
    tf.dispose([x, y, p]);
    await after?.(b, part.map((i) => poolLabels[i]));
  }
  return predictions;
}

/** Held-out images (never streamed). */
const heldOut = (n = 64) => fmnistImages(3000, n);

function scoresOf(method: Analytic): Matrix {
  const x = heldOut();
  try {
    return method.evaluateScores(x);
  } finally {
    x.dispose();
  }
}

async function evaluated(method: Analytic): Promise<Float32Array> {
  const x = heldOut();
  const p = await method.evaluate(x);
  const v = Float32Array.from(p.dataSync());
  tf.dispose([x, p]);
  return v;
}


/** Bit-level equality of float arrays (so -0 and NaN payloads count). */
function sameBits(a: Float64Array | Float32Array, b: Float64Array | Float32Array): boolean {
  if (a.length !== b.length || a.constructor !== b.constructor) return false;
  const [x, y] = [new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)];
  return x.every((v, i) => v === y[i]);
}

function sameSnapshot(a: RidgeSnapshot, b: RidgeSnapshot): boolean {
  return a.dim === b.dim && a.classes === b.classes && sameBits(a.R, b.R) && sameBits(a.W, b.W);
}

/**
 * A class-incremental-like stream: 60 images of classes 0-2 first, then 260 images of every
 * class (classes 3-9 first appear mid-stream), in pool order within each part.
 */
function incrementalStream(): number[] {
  const early = [...poolLabels.keys()].filter((i) => poolLabels[i] <= 2).slice(0, 60);
  const used = new Set(early);
  const late = [...poolLabels.keys()].filter((i) => !used.has(i)).slice(0, 260);
  return [...early, ...late];
}

describe('predictions do not depend on the stream\'s batch size', () => {
  // 320 images: 16 batches of 20, or batches of 1, 7, 272 (more rows than d = 256) and 40.
  const splits = [Array<number>(16).fill(20), [1, 7, 272, 40]];

  it.each(['acil', 'aef-ocl'])('%s: same scores (1e-9) and classes after either split', async (name) => {
    const indices = incrementalStream();
    const results = [];
    for (const sizes of splits) {
      const { method, done } = await fresh(name);
      await stream(method, indices, sizes);
      results.push({ scores: scoresOf(method), classes: [...method.seenClasses], probabilities: await evaluated(method) });
      done();
    }
    const [a, b] = results;
    expect(a.classes).toEqual(b.classes);
    expect(a.classes.slice(0, 3).sort()).toEqual([0, 1, 2]);
    expect([a.scores.rows, a.scores.cols]).toEqual([64, K]);
    expect(relativeError(a.scores.data, b.scores.data)).toBeLessThan(1e-9);
    for (let i = 0; i < a.probabilities.length; i++) expect(Math.abs(a.probabilities[i] - b.probabilities[i])).toBeLessThan(1e-6);
  });

  it('ds-al: the main stream is batch-size independent; with C = 0 so are its predictions', async () => {
    const indices = incrementalStream();
    const results = [];
    for (const sizes of splits) {
      const { method, done } = await fresh<DsAlMethod>('ds-al', { compensation: 0 });
      await stream(method, indices, sizes);
      results.push({ main: method.main.weight.data, scores: scoresOf(method) });
      done();
    }
    expect(relativeError(results[0].main, results[1].main)).toBeLessThan(1e-9);
    expect(relativeError(results[0].scores.data, results[1].scores.data)).toBeLessThan(1e-9);
  });
});

describe('AEF-OCL', () => {
  /** An imbalanced stream: class c gets about (c + 1) * 6 images, mixed over 8 batches. */
  function imbalanced(): { indices: number[]; sizes: number[] } {
    const rng = Rng.derive(0, 'imbalanced');
    const indices = rng.shuffle(byClass.flatMap((list, c) => list.slice(0, (c + 1) * 6)));
    return { indices, sizes: [1, 40, 80, 50, 64, 30, 35, 30] };
  }

  it.each(['cached', 'per-batch'] as const)('balance %s: the real-data state is bit for bit ACIL\'s, the pseudo-feature counts are max_count - count_c', async (balance) => {
    const { indices, sizes } = imbalanced();
    const acil = await fresh<AcilMethod>('acil');
    const aef = await fresh<AefOclMethod>('aef-ocl', { balance });
    const counts = new Map<number, number>();
    const acilStates: RidgeSnapshot[] = [];
    await stream(acil.method, indices, sizes, () => void acilStates.push(acil.method.ridge.snapshot()));
    let drawn = 0;
    await stream(aef.method, indices, sizes, async (b, labels) => {
      for (const c of labels) counts.set(c, (counts.get(c) ?? 0) + 1);
      const most = Math.max(...counts.values());
      const expected = new Map([...counts].map(([c, n]) => [c, most - n]));
      if (balance === 'per-batch') {
        // Balancing happens at the next prediction, from the real state, which it leaves as it was.
        expect(sameSnapshot(aef.method.ridge.snapshot(), acilStates[b])).toBe(true);
        const x = heldOut(8);
        tf.dispose(await aef.method.predict(x));
        x.dispose();
      }
      expect(new Map(aef.method.pseudoCounts)).toEqual(expected);
      const total = [...expected.values()].reduce((a, v) => a + v, 0);
      expect(aef.method.diagnostics()).toEqual({ pseudoFeatures: total });
      drawn += total;
      expect(sameSnapshot(aef.method.realState(), acilStates[b])).toBe(true);
      expect(aef.method.statistics.classes()).toEqual([...counts.keys()].sort((p, q) => p - q));
      for (const [c, n] of counts) expect(aef.method.statistics.count(c)).toBe(n);
    });
    expect(drawn).toBeGreaterThan(0);
    // The balanced classifier is not ACIL's: the pseudo-features were fitted.
    expect(relativeError(scoresOf(aef.method).data, scoresOf(acil.method).data)).toBeGreaterThan(1e-3);
    if (balance === 'per-batch') expect(sameSnapshot(aef.method.ridge.snapshot(), acil.method.ridge.snapshot())).toBe(true);
    acil.done();
    aef.done();
  });

  it('balances the same way in both modes (same draws from the same data)', async () => {
    const { indices, sizes } = imbalanced();
    const cached = await fresh('aef-ocl', { balance: 'cached' });
    const perBatch = await fresh('aef-ocl', { balance: 'per-batch' });
    const a = await stream(cached.method, indices, sizes);
    const b = await stream(perBatch.method, indices, sizes);
    a.forEach((p, i) => expect(sameBits(p, b[i])).toBe(true));
    expect(sameBits(scoresOf(cached.method).data, scoresOf(perBatch.method).data)).toBe(true);
    cached.done();
    perBatch.done();
  });

  it('with balanced classes draws no pseudo-feature and predicts exactly as ACIL', async () => {
    // After every batch each class seen so far has the same count (3, 3, 5, 5); classes 2-9 first appear mid-stream.
    const plan: [number[], number][] = [
      [[0, 1], 3],
      [[2, 3], 3],
      [[0, 1, 2, 3], 2],
      [[4, 5, 6, 7, 8, 9], 5],
    ];
    const indices: number[] = [];
    const sizes: number[] = [];
    const taken = Array<number>(K).fill(0);
    for (const [classes, each] of plan) {
      for (const c of classes) {
        indices.push(...byClass[c].slice(taken[c], taken[c] + each));
        taken[c] += each;
      }
      sizes.push(each * classes.length);
    }
    for (const balance of ['cached', 'per-batch']) {
      const acil = await fresh('acil');
      const aef = await fresh<AefOclMethod>('aef-ocl', { balance });
      const a = await stream(acil.method, indices, sizes);
      const b = await stream(aef.method, indices, sizes, () => {
        expect([...aef.method.pseudoCounts.values()].every((n) => n === 0)).toBe(true);
        // No backup of the real state is kept: R and W once, plus the class statistics.
        expect(aef.method.stateParts().analytic).toBeLessThan(2 * aef.method.ridge.stateBytes());
      });
      a.forEach((p, i) => expect(sameBits(p, b[i])).toBe(true));
      expect(sameBits(await evaluated(acil.method), await evaluated(aef.method))).toBe(true);
      acil.done();
      aef.done();
    }
  });
});

describe('DS-AL', () => {
  it('with compensation 0 is ACIL, bit for bit', async () => {
    const indices = incrementalStream().slice(0, 160);
    const sizes = Array<number>(10).fill(16);
    const acil = await fresh<AcilMethod>('acil');
    const dsal = await fresh<DsAlMethod>('ds-al', { compensation: 0 });
    const a = await stream(acil.method, indices, sizes);
    const b = await stream(dsal.method, indices, sizes);
    a.forEach((p, i) => expect(sameBits(p, b[i])).toBe(true));
    expect(sameSnapshot(dsal.method.main.snapshot(), acil.method.ridge.snapshot())).toBe(true);
    expect(sameBits(await evaluated(acil.method), await evaluated(dsal.method))).toBe(true);
    // The compensation stream was fitted all the same; with C > 0 it changes the scores.
    expect(dsal.method.compensation.classes).toBe(dsal.method.main.classes);
    acil.done();
    dsal.done();
  });

  it('fits the compensation stream to the main stream\'s residual on the current phase\'s classes', async () => {
    const { method, done } = await fresh<DsAlMethod>('ds-al', { compensation: 0.6, compensationGamma: 0.5 });
    expect(method.compensation.gamma).toBe(0.5);
    // By hand, from the same parts: projection (same seed), ReLU/tanh streams, masked residuals.
    const ctx = await methodContext();
    const layer = new BufferLayer({ inputDim: ctx.network.featureDim, width: D, rng: Rng.derive(0, 'analytic', 'buffer-layer'), activation: 'identity' });
    const main = new RecursiveRidge({ dim: D, gamma: 0.1 });
    const comp = new RecursiveRidge({ dim: D, gamma: 0.5 });
    const columns: number[] = [];
    let phase = new Set<number>();
    // Phases: {0, 1}; still {0, 1}; class 2 is new -> {2}; class 0 comes back -> {2, 0}; 3 and 4 new -> {3, 4}.
    const plan: [number[], number[]][] = [
      [[0, 1, 0, 1], [0, 1]],
      [[1, 0, 1], [0, 1]],
      [[2, 1, 2], [2]],
      [[0, 2], [0, 2]],
      [[3, 0, 4, 4], [3, 4]],
    ];
    const taken = Array<number>(K).fill(0);
    for (const [classes, expectedPhase] of plan) {
      const indices = classes.map((c) => byClass[c][taken[c]++]);
      await stream(method, indices, [indices.length]);
      expect(method.phaseClasses).toEqual(expectedPhase);
      // The same batch by hand.
      const { x } = batch(indices);
      const f = ctx.network.features(x);
      const features: Matrix = { rows: indices.length, cols: ctx.network.featureDim, data: Float64Array.from(f.dataSync()) };
      tf.dispose([x, f]);
      const added = classes.filter((c, i) => !columns.includes(c) && classes.indexOf(c) === i);
      columns.push(...added);
      phase = added.length > 0 ? new Set(added) : new Set([...phase, ...classes]);
      const Y = classes.map((c) => columns.map((k) => (k === c ? 1 : 0)));
      const z = layer.project(features);
      const xMain = activate(z, 'relu');
      main.fit(xMain, Y);
      const fitted = main.predict(xMain);
      const residual = Y.map((row, i) => row.map((v, j) => (phase.has(columns[j]) ? v - fitted.data[i * columns.length + j] : 0)));
      comp.fit(activate(z, 'tanh'), residual);
      expect(sameSnapshot(method.main.snapshot(), main.snapshot())).toBe(true);
      expect(sameSnapshot(method.compensation.snapshot(), comp.snapshot())).toBe(true);
    }
    // Scores = main + C * compensation.
    const x = heldOut(4);
    const f = ctx.network.features(x);
    const z = layer.project({ rows: 4, cols: ctx.network.featureDim, data: Float64Array.from(f.dataSync()) });
    tf.dispose([x, f]);
    const m = main.predict(activate(z, 'relu'));
    const c = comp.predict(activate(z, 'tanh'));
    expect(Array.from(scoresOf(method).data.slice(0, 4 * columns.length))).toEqual(Array.from(m.data, (v, i) => v + 0.6 * c.data[i]));
    ctx.network.dispose();
    done();
  });
});

describe('the analytic methods\' interface', () => {
  it.each(['acil', 'aef-ocl', 'ds-al'])('%s: valid probabilities, 0 for unseen classes, uniform before any label; temperature keeps the argmax', async (name) => {
    const { method, done } = await fresh(name);
    expect(method.usesLabels).toBe(true);
    expect(method.labelSpace).toBe('dataset');
    const x = heldOut(16);
    const first = await method.predict(x);
    expect(first.shape).toEqual([16, K]);
    expect(first.dtype).toBe('float32');
    expect(Array.from(first.dataSync()).every((v) => v === Math.fround(1 / K))).toBe(true);
    first.dispose();
    // Classes 0, 3 and 7 only.
    const indices = [0, 3, 7].flatMap((c) => byClass[c].slice(0, 5));
    await stream(method, indices, [6, 9]);
    const p = await method.predict(x);
    const v = p.dataSync();
    for (let i = 0; i < 16; i++) {
      const row = Array.from(v.slice(i * K, (i + 1) * K));
      expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-6);
      row.forEach((q, c) => ([0, 3, 7].includes(c) ? expect(q).toBeGreaterThan(0) : expect(q).toBe(0)));
    }
    // The argmax is the scores' argmax at any temperature; a low temperature sharpens.
    const s = scoresOf(method);
    const classes = method.seenClasses;
    const argmax = (r: ArrayLike<number>, cols: number, i: number) => {
      let best = 0;
      for (let j = 1; j < cols; j++) if (r[i * cols + j] > r[i * cols + best]) best = j;
      return best;
    };
    const sharp = await fresh(name, { temperature: 0.05 });
    await stream(sharp.method, indices, [6, 9]);
    const q = await sharp.method.predict(x);
    const w = q.dataSync();
    for (let i = 0; i < 16; i++) {
      const c = classes[argmax(s.data, s.cols, i)];
      expect(argmax(v, K, i)).toBe(c);
      expect(argmax(w, K, i)).toBe(c);
      expect(w[i * K + c]).toBeGreaterThanOrEqual(v[i * K + c]);
    }
    tf.dispose([x, p, q]);
    sharp.done();
    done();
  });

  it.each(['acil', 'aef-ocl', 'ds-al'])('%s: evaluate changes nothing, reset returns to the state after init, no tensor leaks', async (name) => {
    const tensors = tf.memory().numTensors;
    const { method, done } = await fresh(name);
    const afterInit = method.stateBytes();
    const { indices, sizes } = { indices: incrementalStream().slice(0, 100), sizes: [10, 30, 25, 35] };
    const first = await stream(method, indices.slice(0, 40), sizes.slice(0, 2));
    const bytes = method.stateBytes();
    const parts = method.stateParts();
    const diagnostics = method.diagnostics();
    const scores = scoresOf(method);
    const e1 = await evaluated(method);
    const e2 = await evaluated(method);
    expect(sameBits(e1, e2)).toBe(true);
    expect(sameBits(scoresOf(method).data, scores.data)).toBe(true);
    expect(method.stateBytes()).toBe(bytes);
    expect(method.stateParts()).toEqual(parts);
    expect(method.diagnostics()).toEqual(diagnostics);
    const rest = await stream(method, indices.slice(40), sizes.slice(2));
    // A twin that never evaluated predicts the same.
    const twin = await fresh(name);
    const twinPredictions = await stream(twin.method, indices, sizes);
    [...first, ...rest].forEach((p, i) => expect(sameBits(p, twinPredictions[i])).toBe(true));
    twin.done();

    await method.reset();
    expect(method.seenClasses).toEqual([]);
    expect(method.stateBytes()).toBe(afterInit);
    const x = heldOut(8);
    const p = await method.predict(x);
    expect(Array.from(p.dataSync()).every((q) => q === Math.fround(1 / K))).toBe(true);
    tf.dispose([x, p]);
    // The same stream after reset gives what a fresh instance gave.
    const again = await stream(method, indices, sizes);
    again.forEach((q, i) => expect(sameBits(q, twinPredictions[i])).toBe(true));
    done();
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it('stateBytes counts R and W of every stream, the buffer layer, AEF-OCL\'s statistics and backup; all of it host memory', async () => {
    const f = 64;
    const indices = incrementalStream().slice(0, 50);
    const sizes = [20, 30];
    const acil = await fresh('acil');
    await stream(acil.method, indices, sizes);
    const c = acil.method.seenClasses.length;
    const ridge = 8 * D * D + 8 * D * c;
    expect(acil.method.stateParts()).toEqual({ analytic: ridge, other: 8 * f * D });
    expect(acil.method.stateBytes()).toBe(ridge + 8 * f * D);
    expect(acil.method.hostStateBytes()).toBe(acil.method.stateBytes());
    const dsal = await fresh('ds-al');
    await stream(dsal.method, indices, sizes);
    expect(dsal.method.stateBytes()).toBe(2 * ridge + 8 * f * D);
    const aef = await fresh<AefOclMethod>('aef-ocl');
    await stream(aef.method, indices, sizes);
    // Imbalanced after these batches: the real state is backed up while the balanced one predicts.
    expect(Math.max(...aef.method.pseudoCounts.values())).toBeGreaterThan(0);
    expect(aef.method.stateParts()).toEqual({ analytic: 2 * ridge + c * 8 * (1 + 2 * f), other: 8 * f * D });
    for (const m of [acil, dsal, aef]) m.done();
  });

  it('needs labels, as class indices of the dataset, one per image', async () => {
    const { method, done } = await fresh('acil');
    const { x, y } = batch([0, 1, 2]);
    expect((await rejection(method.adapt(x))).toLine()).toMatch(/acil needs the labels of every batch.*fix: .*reveals labels/);
    const bad = [tf.tensor1d([0, 1, 10], 'int32'), tf.tensor1d([0, 1.5, 2], 'float32'), tf.tensor1d([0, 1], 'int32'), tf.tensor1d([-1, 1, 2], 'int32')];
    const messages = [/label 10 of image 2 is not a class index in \[0, 10\)/, /label 1.5 of image 1/, /3 images but labels of shape \[2\]/, /label -1 of image 0/];
    for (const [i, labels] of bad.entries()) expect((await rejection(method.adapt(x, labels))).message).toMatch(messages[i]);
    // Nothing was fitted by the failed calls; float labels that are integers are accepted.
    expect(method.seenClasses).toEqual([]);
    const floats = tf.cast(y, 'float32') as tf.Tensor1D;
    await method.adapt(x, floats);
    expect(method.seenClasses).toEqual([...new Set(Array.from(y.dataSync()))]);
    tf.dispose([x, y, floats, ...bad]);
    done();
  });
});

describe('options', () => {
  it('have the papers\' CIFAR-100 values, 2048 elsewhere, and are strict', async () => {
    for (const name of ['acil', 'aef-ocl', 'ds-al']) {
      expect(resolveMethodOptions(name, {}, 'cifar100')).toMatchObject({ bufferSize: 8192, gamma: 0.1, temperature: 1 });
      expect(resolveMethodOptions(name, {}, 'fashion-mnist')).toMatchObject({ bufferSize: 1024, gamma: 0.1 });
      expect(resolveMethodOptions(name, {}, 'cifar10')).toMatchObject({ bufferSize: 2048, gamma: 0.1 });
      await expectCttaError(() => resolveMethodOptions(name, { lr: 0.1 }), /unknown option lr/);
      await expectCttaError(() => resolveMethodOptions(name, { gamma: 0 }), /option gamma/);
    }
    expect(resolveMethodOptions('aef-ocl')).toMatchObject({ balance: 'cached' });
    await expectCttaError(() => resolveMethodOptions('aef-ocl', { balance: 'never' }), /option balance/);
    expect(resolveMethodOptions('ds-al', {}, 'cifar100')).toMatchObject({ compensation: 0.6, compensationGamma: 0.1 });
    expect(resolveMethodOptions('ds-al', {}, 'imagenet')).toMatchObject({ bufferSize: 2048, compensation: 1.5, compensationGamma: 0.1 });
    expect(resolveMethodOptions('ds-al', { gamma: 0.3 })).toMatchObject({ gamma: 0.3, compensationGamma: 0.3 });
    expect(resolveMethodOptions('ds-al', { gamma: 0.3, compensationGamma: 2 })).toMatchObject({ compensationGamma: 2 });
    await expectCttaError(() => resolveMethodOptions('ds-al', { compensationGamma: -1 }), /option compensationGamma/);
    expect(createMethod('ds-al', {}, 'cifar10')).toBeInstanceOf(DsAlMethod);
    expect(createMethod('aef-ocl', {}, 'cifar10')).toBeInstanceOf(AefOclMethod);
  });
});

// The method contract (probabilities, leaks, reset, determinism, evaluate, stateBytes) is checked
// for all three, and AEF-OCL's per-batch balancing, by tests/contract/methods.test.ts.
