/**
 * TAME's defining properties:
 *  - the shift detector (a pure class) fires within a few batches once the loss jumps past
 *    mean + 3 std, and never on a stationary stream (10,000 seeded batches, symmetric and skewed
 *    noise);
 *  - on a stream A, B, A (class pairs of Fashion-MNIST, a scratch network): B spawns expert 1, the
 *    return of A goes back to expert 0 (its loss on A is low again) and no third expert appears;
 *  - the selector routes predict: after A and B it sends held-out A images to expert 0 and B
 *    images to expert 1, and predict is right on the four classes where any single expert is not;
 *  - head mode with a frozen backbone trains heads only;
 *  (the method contract, with options that switch experts within its batches and head mode, is
 *  checked in tests/contract/methods.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveMethodOptions } from '../src/methods/registry.js';
import { TameMethod, tameOptions, type TameOptions } from '../src/methods/tame.js';
import type { ExpertPool } from '../src/methods/tame/expert-pool.js';
import type { Selector } from '../src/methods/tame/selector.js';
import { ShiftDetector } from '../src/methods/tame/shift-detector.js';
import { createModel } from '../src/models/registry.js';
import type { ImageDataset } from '../src/streams/datasets/types.js';
import { Rng } from '../src/util/rng.js';
import { changedWeights, expectCttaError, methodContext, useFashionMnist, useWasm, weightValues } from './helpers.js';

let ds: ImageDataset;

beforeAll(async () => {
  await useWasm();
  ds = await useFashionMnist();
});

describe('ShiftDetector', () => {
  /** `n` losses ~ N(1, 0.1) from a seeded stream. */
  const normal = (rng: Rng) => rng.normal(1, 0.1);

  it('fires within a few batches once the loss jumps past mean + 3 std, and never before', () => {
    // Jumps in units of the loss's std (0.1): 6 is twice the threshold's distance, 20 a new
    // task's kind of jump. The bound on the delay holds for all 20 seeds.
    for (const [jump, within] of [
      [6, 6],
      [10, 3],
      [20, 1],
    ] as const) {
      const delays: number[] = [];
      for (let seed = 0; seed < 20; seed++) {
        const rng = Rng.derive(seed, 'jump');
        const d = new ShiftDetector();
        for (let i = 0; i < 200; i++) expect(d.observe(normal(rng)).shifted).toBe(false);
        let k = 1;
        while (!d.observe(normal(rng) + jump * 0.1).shifted && k < 100) k++;
        delays.push(k);
      }
      expect(Math.max(...delays)).toBeLessThanOrEqual(within);
    }
  });

  it('never fires on a stationary stream of 10,000 batches of noise (seeded)', () => {
    const streams: [string, (rng: Rng) => number][] = [
      ['normal', normal],
      // Skewed like the CE of small batches: an occasional batch far above the rest.
      ['exponential', (rng) => -Math.log(rng.floatOpen0())],
    ];
    for (const [name, draw] of streams) {
      const rng = Rng.derive(7, 'stationary', name);
      const d = new ShiftDetector();
      let fired = 0;
      let outliers = 0;
      for (let i = 0; i < 10_000; i++) {
        const o = d.observe(draw(rng));
        if (o.shifted) fired++;
        if (o.outlier) outliers++;
      }
      expect(fired, name).toBe(0);
      // The tail above the threshold exists (so the test is not vacuous) and is recorded later.
      expect(outliers, name).toBeGreaterThan(0);
    }
  });

  it('an outlier waits: recorded after an ordinary loss, dropped when the shift fires', () => {
    const d = new ShiftDetector({ minHistory: 10 });
    for (let i = 0; i < 20; i++) d.observe(i % 2 ? 0.9 : 1.1);
    const before = d.threshold();
    const one = d.observe(1.5);
    expect(one.outlier && !one.shifted).toBe(true);
    expect(d.size).toBe(20);
    expect(d.threshold()).toBe(before); // the outlier is not (yet) in the statistics
    d.observe(1);
    expect(d.size).toBe(22); // a one-off: recorded with the ordinary loss after it
    // A sustained jump: the EWMA climbs with the threshold unmoved, then fires; nothing recorded.
    const t = d.threshold();
    let o = d.observe(1.8);
    let climbed = 0;
    while (!o.shifted) {
      expect(o.threshold).toBe(t);
      o = d.observe(1.8);
      climbed++;
    }
    expect(climbed).toBeGreaterThan(0);
    expect(d.size).toBe(22);
  });

  it('accepts a return whose loss is within its own threshold; its EWMA resumes from before the climb', () => {
    const d = new ShiftDetector();
    for (let i = 0; i < 30; i++) d.observe(i % 2 ? 0.4 : 0.6);
    const settled = d.smoothed!;
    while (!d.observe(8).shifted);
    expect(d.smoothed).toBe(settled); // back to before the climb
    expect(d.accepts(0.7)).toBe(true);
    expect(d.accepts(8)).toBe(false);
    d.resume(0.7);
    expect(d.smoothed).toBeCloseTo(settled + 0.2 * (0.7 - settled), 12);
  });
});

/** Indices of the first `n` test images whose class is in `classes`, from index `from` on. */
function indicesOf(classes: number[], n: number, from = 0): number[] {
  const out: number[] = [];
  for (let i = from; i < ds.n && out.length < n; i++) if (classes.includes(ds.labels[i]!)) out.push(i);
  return out;
}

function batchOf(indices: number[]) {
  const bytes = new Uint8Array(indices.length * 784);
  indices.forEach((i, k) => bytes.set(ds.images.subarray(i * 784, (i + 1) * 784), k * 784));
  const x = tf.tidy(() => tf.div(tf.tensor4d(bytes, [indices.length, 28, 28, 1], 'int32'), 255) as tf.Tensor4D);
  return { x, y: tf.tensor1d(Int32Array.from(indices, (i) => ds.labels[i]!), 'int32') };
}

interface Internals {
  pool: ExpertPool;
  selector: Selector;
}
const internals = (m: TameMethod) => m as unknown as Internals;

/** Task A: trouser / ankle boot; task B: sandal / bag (each pair easy, the pairs disjoint). */
const A = [1, 9];
const B = [5, 8];
const BATCH = 16;

describe('TAME on a stream A, B, A (network experts, scratch network)', () => {
  let method: TameMethod;
  let network: { dispose(): void };
  const timeline: { phase: number; expert: number; experts: number; switched: number; spawned: number; loss: number }[] = [];
  const routing = { toZeroOfA: 0, toOneOfB: 0, rowDifference: Infinity, accuracy: 0, bestSingleExpert: 0 };
  let tensorsBefore = 0;
  let tensorsAfterEvaluate = 0;
  let tensorsMid = 0;

  beforeAll(async () => {
    tensorsBefore = tf.memory().numTensors;
    method = new TameMethod(tameOptions.parse({}));
    const ctx = await methodContext({ network: createModel('resnet8', { width: 4, seed: 1 }) });
    network = ctx.network;
    await method.init(ctx);
    const a = indicesOf(A, 1200);
    const b = indicesOf(B, 800);
    const phases = [a.slice(0, 30 * BATCH), b.slice(0, 30 * BATCH), a.slice(40 * BATCH, 52 * BATCH)];
    for (const [phase, idx] of phases.entries()) {
      for (let k = 0; k * BATCH < idx.length; k++) {
        const { x, y } = batchOf(idx.slice(k * BATCH, (k + 1) * BATCH));
        tf.dispose(await method.predict(x));
        await method.adapt(x, y);
        const d = method.diagnostics()!;
        timeline.push({ phase, expert: d.expert!, experts: d.experts!, switched: d.switched!, spawned: d.spawned!, loss: d.loss! });
        tf.dispose([x, y]);
      }
      if (phase === 1) {
        // After A and B: held-out images of both (never streamed), routed by the selector.
        tensorsMid = tf.memory().numTensors;
        const heldA = batchOf(a.slice(1000, 1064));
        const heldB = batchOf(b.slice(600, 664));
        const { pool, selector } = internals(method);
        const route = (x: tf.Tensor4D) => {
          const input = tf.reshape(x, [x.shape[0], -1]) as tf.Tensor2D;
          const r = selector.choose(input, pool.size);
          input.dispose();
          return r;
        };
        const fraction = (r: Int32Array, e: number) => r.filter((v) => v === e).length / r.length;
        routing.toZeroOfA = fraction(route(heldA.x), 0);
        routing.toOneOfB = fraction(route(heldB.x), 1);
        const x = tf.concat([heldA.x, heldB.x]) as tf.Tensor4D;
        const y = [...heldA.y.dataSync(), ...heldB.y.dataSync()];
        const accuracy = (p: tf.Tensor2D) => {
          const best = tf.argMax(p, 1);
          const guess = best.dataSync();
          tf.dispose([p, best]);
          return y.filter((c, i) => c === guess[i]).length / y.length;
        };
        // Each row of the prediction is the softmax of the expert the selector picked for it.
        const routed = await method.predict(x);
        const chosen = route(x);
        const alone = [0, 1].map((e) => pool.predict(x, new Int32Array(x.shape[0]).fill(e)));
        const rows = [routed, ...alone].map((p) => p.arraySync());
        routing.rowDifference = Math.max(...rows[0]!.flatMap((row, i) => row.map((v, j) => Math.abs(v - rows[1 + chosen[i]!]![i]![j]!))));
        routing.accuracy = accuracy(routed);
        routing.bestSingleExpert = Math.max(...alone.map(accuracy));
        tf.dispose([x, heldA.x, heldA.y, heldB.x, heldB.y]);
        tensorsAfterEvaluate = tf.memory().numTensors;
      }
    }
  }, 600_000);

  afterAll(() => {
    method?.dispose();
    network?.dispose();
  });

  it('a new task spawns a new expert: B gets expert 1 within a few batches', () => {
    const b = timeline.filter((t) => t.phase === 1);
    expect(timeline.filter((t) => t.phase === 0).every((t) => t.expert === 0 && t.experts === 1)).toBe(true);
    const first = b.findIndex((t) => t.spawned === 1);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThan(10);
    expect(b.slice(first).every((t) => t.expert === 1 && t.experts === 2)).toBe(true);
  });

  it('a recurring task returns to its old expert: A again reuses expert 0, no third expert', () => {
    const again = timeline.filter((t) => t.phase === 2);
    const back = again.findIndex((t) => t.switched === 1);
    expect(back).toBeGreaterThanOrEqual(0);
    expect(back).toBeLessThan(6);
    expect(again[back]!.spawned).toBe(0);
    expect(again.slice(back).every((t) => t.expert === 0)).toBe(true);
    // Expert 0's loss on A is low again (it was never trained on B: the B batches it found
    // anomalous were held, then went to expert 1).
    expect(again[back + 1]!.loss).toBeLessThan(1);
    expect(Math.max(...timeline.map((t) => t.experts))).toBe(2);
    expect(timeline.filter((t) => t.spawned === 1)).toHaveLength(1);
  });

  it('the selector routes predict: A to expert 0, B to expert 1, each image gets its expert\'s softmax', () => {
    expect(routing.toZeroOfA).toBeGreaterThanOrEqual(0.8);
    expect(routing.toOneOfB).toBeGreaterThanOrEqual(0.8);
    expect(routing.rowDifference).toBeLessThan(1e-5);
    // Each expert knows its own two classes only: alone, at most about half of the four; routed,
    // far more.
    expect(routing.bestSingleExpert).toBeLessThanOrEqual(0.6);
    expect(routing.accuracy).toBeGreaterThanOrEqual(routing.bestSingleExpert + 0.2);
  });

  it('routing predictions leave no tensor behind, and dispose frees everything', () => {
    expect(tensorsAfterEvaluate).toBe(tensorsMid);
    method.dispose();
    network.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    method = undefined as unknown as TameMethod;
    network = undefined as unknown as { dispose(): void };
  });
});

describe('TAME head mode', () => {
  it('with a frozen backbone trains the heads only (backbone weights and statistics bit-identical)', async () => {
    const method = new TameMethod(tameOptions.parse({ mode: 'head', backbone: 'frozen', selectorInput: 'features' } satisfies Partial<TameOptions>));
    const ctx = await methodContext();
    await method.init(ctx);
    const before = weightValues(ctx.network);
    const idx = indicesOf(A, 4 * BATCH);
    for (let k = 0; k < 4; k++) {
      const { x, y } = batchOf(idx.slice(k * BATCH, (k + 1) * BATCH));
      tf.dispose(await method.predict(x));
      await method.adapt(x, y);
      tf.dispose([x, y]);
    }
    expect(changedWeights(ctx.network, before)).toEqual([]);
    expect(method.diagnostics()!.trainLoss).toBeGreaterThan(0);
    expect(method.stateParts().experts).toBeGreaterThan(0);
    method.dispose();
    ctx.network.dispose();
  });
});

describe('TAME options', () => {
  it('refuses a selector on features that change (network mode, or a trained backbone)', async () => {
    await expectCttaError(() => resolveMethodOptions('tame', { selectorInput: 'features' }), /option selectorInput: 'features' needs mode 'head'/);
    await expectCttaError(() => resolveMethodOptions('tame', { mode: 'head', backbone: 'train', selectorInput: 'features' }), /selectorInput/);
    expect(resolveMethodOptions('tame', { mode: 'head', selectorInput: 'features' })).toMatchObject({ backbone: 'frozen' });
  });
});
