/**
 * OnPro assembled (src/methods/onpro/onpro.ts): the method contract; which batch the CE trains
 * on (the stream batch in task 0, the replay batch only afterwards); APF only from a task's
 * second batch; the projection head is trained, counted and restored; the rotation count sets the
 * instance loss's batch; options and per-dataset defaults; no tensor leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import '../src/methods/onpro/onpro.js';
import { OnProMethod, onproOptions, replayInstanceClasses, type OnProOptions } from '../src/methods/onpro/onpro.js';
import type { LabelledBatch } from '../src/methods/base/online-learner.js';
import { resolveMethodOptions } from '../src/methods/registry.js';
import type { ReplayBuffer } from '../src/methods/replay/replay-buffer.js';
import type { Network } from '../src/models/network.js';
import type { ImageDataset } from '../src/streams/datasets/types.js';
import { checkMethod } from './contract/check-method.js';
import { expectCttaError, methodContext, useFashionMnist, useWasm, weightValues } from './helpers.js';

let ds: ImageDataset;

beforeAll(async () => {
  await useWasm();
  ds = await useFashionMnist();
});

/** Indices of the first `n` test images of class `c` from index `from` on. */
function indicesOf(c: number, n: number, from = 0): number[] {
  const out: number[] = [];
  for (let i = from; i < ds.n && out.length < n; i++) if (ds.labels[i] === c) out.push(i);
  return out;
}

/** A batch of the given test images: [n, 28, 28, 1] floats in [0, 1], int32 labels, and the raw bytes. */
function batchOf(indices: number[]) {
  const bytes = new Uint8Array(indices.length * 784);
  indices.forEach((i, k) => bytes.set(ds.images.subarray(i * 784, (i + 1) * 784), k * 784));
  const labels = Int32Array.from(indices, (i) => ds.labels[i]!);
  const x = tf.tidy(() => tf.div(tf.tensor4d(bytes, [indices.length, 28, 28, 1], 'int32'), 255) as tf.Tensor4D);
  return { x, y: tf.tensor1d(labels, 'int32'), labels, bytes };
}

/** The method's internals that the tests look at. */
interface Internals {
  memory: ReplayBuffer;
  seen: number[];
  projection: { kernel: tf.Variable; bias: tf.Variable };
  learn(batch: LabelledBatch): Promise<void>;
}
const internals = (m: OnProMethod) => m as unknown as Internals;

async function onpro(options: Partial<OnProOptions> = {}, ctxExtra: Parameters<typeof methodContext>[0] = {}) {
  const method = new OnProMethod(onproOptions.parse({ rotations: 1, memorySize: 40, ...options }));
  const ctx = await methodContext(ctxExtra);
  await method.init(ctx);
  return { method, ctx };
}

function done(method: OnProMethod, network: { dispose(): void }, tensors: tf.Tensor[] = []) {
  method.dispose();
  network.dispose();
  tf.dispose(tensors);
}

describe('OnPro', () => {
  // The contract at rotations 1 runs in tests/contract/methods.test.ts with every method.
  it('passes the method contract with the 16 rotation variants (small batches and memory)', async () => {
    // At most 2 x 16 x (4 + 8) = 384 images per pass (about 2 GB of the wasm heap on the shipped
    // model) keeps the 18 steps of the check to a few minutes.
    expect(await checkMethod('onpro', { rotations: 16, memorySize: 8, replayBatch: 8 }, { batchSize: 4, batches: 6 })).toEqual([]);
  }, 1_200_000);

  /**
   * Only the CE reaches the classifier head (the instance and OPE losses go through the
   * projection head), and each case below is the optimiser's first Adam step, whose update is
   * -lr * sign(gradient) (weight decay off). With every CE sample of one class c, the head bias
   * of c rises (softmax gradient p_c - 1 < 0) and every other class's falls (p_j > 0). The
   * memory holds class A only, the stream batch class B only: the sign pattern says which batch
   * the CE was computed on.
   */
  it('task 0 trains the CE on the stream batch; later tasks on the replay batch only', async () => {
    const A = 1;
    const B = 7;
    const bias = (network: Network) => Float32Array.from(network.namedWeights().get('head/bias')!.dataSync());
    const fill = (m: OnProMethod) => {
      const stored = batchOf(indicesOf(A, 16));
      internals(m).memory.update(stored.bytes, stored.labels);
      tf.dispose([stored.x, stored.y]);
    };
    const stream = batchOf(indicesOf(B, 8));

    // Task 0: the first batch the method sees (through adapt, as the runner calls it).
    {
      const { method, ctx } = await onpro({ weightDecay: 0 });
      fill(method);
      const before = bias(ctx.network);
      tf.dispose(await method.predict(stream.x));
      await method.adapt(stream.x, stream.y);
      const after = bias(ctx.network);
      expect(after[B]).toBeGreaterThan(before[B]!);
      expect(after[A]).toBeLessThan(before[A]!);
      for (let c = 0; c < 10; c++) if (c !== B) expect(after[c]).toBeLessThanOrEqual(before[c]!);
      // The memory took part (OPE on the replay batch), just not in the CE.
      expect(method.diagnostics()).toMatchObject({ replayed: 16, apf: 0 });
      done(method, ctx.network);
    }
    // A later task's first batch (B is new): learn() as adapt calls it, on a fresh optimiser.
    {
      const { method, ctx } = await onpro({ weightDecay: 0 });
      fill(method);
      internals(method).seen.push(A); // as adapt would have recorded when A's batches came
      const before = bias(ctx.network);
      await internals(method).learn({ x: stream.x, y: stream.y, labels: stream.labels, newClasses: true, task: 1, batchInTask: 0 });
      const after = bias(ctx.network);
      expect(after[A]).toBeGreaterThan(before[A]!);
      expect(after[B]).toBeLessThan(before[B]!);
      for (let c = 0; c < 10; c++) if (c !== A) expect(after[c]).toBeLessThanOrEqual(before[c]!);
      // min(64, 7 x 2 classes) = 14 of the 16 stored; un-mixed on a task's first batch.
      expect(method.diagnostics()).toMatchObject({ replayed: 14, apf: 0, mixed: 0 });
      done(method, ctx.network);
    }
    tf.dispose([stream.x, stream.y]);
  }, 300_000);

  it('APF mixes the replay batch only from the second batch of a task after task 0', async () => {
    // mixupP 1: every base sample and every class pair is mixed (lambda > 0 almost surely).
    const { method, ctx } = await onpro({ mixupP: 1 });
    const take = (classes: number[], k: number) => classes.flatMap((c) => indicesOf(c, 4, 100 * k));
    const plan = [
      { classes: [0, 1], expect: { replayed: 0, apf: 0, mixed: 0 } }, // task 0, empty memory
      { classes: [0, 1], expect: { replayed: 8, apf: 0, mixed: 0 } }, // task 0: replay for OPE only
      { classes: [0, 1], expect: { replayed: 16, apf: 0, mixed: 0 } },
      { classes: [2, 3], expect: { replayed: 24, apf: 0, mixed: 0 } }, // task 1 begins: plain replay CE
      { classes: [2, 3], expect: { replayed: 28, apf: 1, mixed: 28 } }, // min(64, 7 x 4) = 28
      { classes: [2, 3], expect: { replayed: 28, apf: 1, mixed: 28 } },
      { classes: [4], expect: { replayed: 35, apf: 0, mixed: 0 } }, // task 2 begins
      { classes: [4], expect: { replayed: 35, apf: 1, mixed: 35 } },
    ];
    for (const [k, step] of plan.entries()) {
      const b = batchOf(take(step.classes, k));
      tf.dispose(await method.predict(b.x));
      await method.adapt(b.x, b.y);
      expect(method.diagnostics(), `batch ${k}`).toMatchObject(step.expect);
      tf.dispose([b.x, b.y]);
    }
    done(method, ctx.network);
  }, 300_000);

  it('trains the projection head, counts it in stateBytes, and reset restores it', async () => {
    const { method, ctx } = await onpro();
    const { kernel, bias } = internals(method).projection;
    // PyTorch's Linear init for 64 inputs: U(-1/8, 1/8).
    expect(kernel.shape).toEqual([64, 128]);
    expect(bias.shape).toEqual([128]);
    const k0 = Float32Array.from(kernel.dataSync());
    const b0 = Float32Array.from(bias.dataSync());
    expect(Math.max(...k0.map(Math.abs))).toBeLessThanOrEqual(1 / 8);
    expect(Math.max(...k0.map(Math.abs))).toBeGreaterThan(0.12);
    // 'other' = the source snapshot + the head and its initial copy (2 x (64 x 128 + 128) floats).
    const source = [...weightValues(ctx.network).values()].reduce((s, v) => s + v.length * 4, 0);
    expect(method.stateParts().other).toBe(source + 2 * 4 * (64 * 128 + 128));
    const net0 = weightValues(ctx.network);
    for (let k = 0; k < 2; k++) {
      const b = batchOf([...indicesOf(0, 4, 200 * k), ...indicesOf(5, 4, 200 * k)]);
      tf.dispose(await method.predict(b.x));
      await method.adapt(b.x, b.y);
      tf.dispose([b.x, b.y]);
    }
    const changed = (now: tf.Tensor, then: Float32Array) => now.dataSync().some((v, i) => v !== then[i]);
    expect(changed(kernel, k0)).toBe(true);
    expect(changed(bias, b0)).toBe(true);
    // The class centres APF allocates from (2 classes x 128 floats) are host state.
    expect(method.hostStateBytes()).toBe(40 * 784 + 40 * 4 + 2 * 128 * 4);
    await method.reset();
    expect(changed(kernel, k0)).toBe(false);
    expect(changed(bias, b0)).toBe(false);
    expect(weightValues(ctx.network)).toEqual(net0);
    expect(method.hostStateBytes()).toBe(40 * 784 + 40 * 4);
    done(method, ctx.network);
  }, 300_000);

  it('rotations 16 puts 16 variants of each view into the instance loss, rotations 1 none', async () => {
    const b = batchOf([...indicesOf(2, 4), ...indicesOf(3, 4)]);
    const rows = async (rotations: 1 | 16) => {
      const { method, ctx } = await onpro({ rotations });
      const seen: number[] = [];
      const features = ctx.network.features.bind(ctx.network);
      ctx.network.features = (x) => (seen.push(x.shape[0]), features(x));
      tf.dispose(await method.predict(b.x));
      await method.adapt(b.x, b.y); // task 0, empty memory: the joint pass only
      const instanceRows = method.diagnostics()!.instanceRows;
      await method.adapt(b.x, b.y); // task 0, memory of 8: joint pass then the OPE replay pass
      done(method, ctx.network);
      return { seen, instanceRows };
    };
    // The first step on wasm first measures a pass's memory per image (6 and 2 blank images), once.
    expect(await rows(1)).toEqual({ seen: [6, 2, 16, 16, 16], instanceRows: 16 });
    expect(await rows(16)).toEqual({ seen: [6, 2, 256, 256, 16], instanceRows: 256 });
    tf.dispose([b.x, b.y]);
  }, 300_000);

  it('uses the feature window only when the backbone is wide enough (auto), refuses it when forced', async () => {
    const b = batchOf([...indicesOf(2, 4), ...indicesOf(3, 4)]);
    const instanceLoss = async (options: Partial<OnProOptions>) => {
      const { method, ctx } = await onpro(options);
      await method.adapt(b.x, b.y);
      const ins = method.diagnostics()!.ins!;
      done(method, ctx.network);
      return ins;
    };
    // The shipped model has 64 features: with 128-wide projections 'auto' leaves the term out.
    expect(await instanceLoss({ featureWindow: 'auto' })).toBe(await instanceLoss({ featureWindow: false }));
    // With 32-wide projections it fits, and the similarity (so the loss) changes.
    expect(await instanceLoss({ featureWindow: 'auto', projectionDim: 32 })).not.toBe(await instanceLoss({ featureWindow: false, projectionDim: 32 }));
    const forced = new OnProMethod(onproOptions.parse({ featureWindow: true }));
    const ctx = await methodContext();
    await expectCttaError(() => forced.init(ctx), /feature window needs at least 128 backbone features.*64/);
    ctx.network.dispose();
    tf.dispose([b.x, b.y]);
  }, 300_000);

  it('leaks no tensors over a few batches (APF steps included) and frees everything on dispose', async () => {
    const start = tf.memory().numTensors;
    const { method, ctx } = await onpro({ memorySize: 24 });
    const counts: number[] = [];
    for (let k = 0; k < 6; k++) {
      const b = batchOf([...indicesOf(k % 3, 4, 50 * k), ...indicesOf(3 + (k % 3), 4, 50 * k)]);
      tf.dispose(await method.predict(b.x));
      await method.adapt(b.x, b.y);
      tf.dispose([b.x, b.y]);
      counts.push(tf.memory().numTensors);
    }
    expect(method.diagnostics()!.apf).toBe(1);
    // Adam's slots appear on the first step; from then on the count stays put.
    expect(new Set(counts.slice(1)).size).toBe(1);
    done(method, ctx.network);
    expect(tf.memory().numTensors).toBe(start);
  }, 300_000);

  it('options: per-dataset defaults, strict validation', async () => {
    expect(resolveMethodOptions('onpro', {}, 'cifar100')).toMatchObject({ memorySize: 500, mixupP: 0.2, baseRate: 0.9, similarityWeight: 1 });
    const fmnist = resolveMethodOptions('onpro', {}, 'fashion-mnist');
    // Fashion-MNIST: CIFAR-10's row with the reduced instance loss (our choice, see the defaults).
    expect(fmnist).toEqual({ ...resolveMethodOptions('onpro', {}, 'cifar10'), rotations: 1 });
    expect(resolveMethodOptions('onpro', {}, 'cifar10').rotations).toBe(16);
    expect(fmnist).toMatchObject({
      memorySize: 200,
      mixupP: 0.6,
      baseRate: 0.75,
      similarityWeight: 0.5,
      rotations: 1,
      replayBatch: 64,
      replayPerClass: 7,
      lr: 5e-4,
      beta1: 0.9,
      beta2: 0.99,
      weightDecay: 1e-4,
      projectionDim: 128,
      opeTemperature: 0.5,
      instanceTemperature: 0.07,
      featureWindow: 'auto',
      doubleGate: false,
      policy: 'reservoir',
    });
    expect(resolveMethodOptions('onpro', { memorySize: 1000 }, 'cifar100')).toMatchObject({ memorySize: 1000, mixupP: 0.2 });
    await expectCttaError(() => resolveMethodOptions('onpro', { rotations: 4 }), /method "onpro": option rotations/);
    await expectCttaError(() => resolveMethodOptions('onpro', { mixupLower: 0.5, mixupUpper: 0.4 }), /option mixupUpper: must be at least mixupLower/);
    await expectCttaError(() => resolveMethodOptions('onpro', { mixupP: 1.5 }), /option mixupP/);
    await expectCttaError(() => resolveMethodOptions('onpro', { temperature: 0.1 }), /unknown option temperature/);
  });

  it('replay instance classes: a real mixture of two classes is a class of its own', () => {
    const classes = replayInstanceClasses(
      { a: Int32Array.from([3, 3, 3, 4]), b: Int32Array.from([5, 3, 5, 1]), lambda: Float32Array.from([0, 0.4, 0.2, 0.7]) },
      10,
    );
    // Un-mixed (lambda 0) and same-class mixtures keep their class; rows 2 and 3 get 10 + row.
    expect(Array.from(classes)).toEqual([3, 3, 12, 13]);
  });
});
