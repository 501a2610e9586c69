/**
 * ER's defining properties: the step's gradient is the sum of the stream and replay CE gradients
 * (Mai et al.) or the gradient of one concatenated batch (Mammoth), the memory is updated after
 * the step (a batch is never replayed in its own step), predictions use BatchNorm's running
 * statistics and change nothing, and training folds batch statistics in with momentum 0.1.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { crossEntropy, ErMethod, erOptions } from '../src/methods/er.js';
import { loadModel } from '../src/models/checkpoint.js';
import { expectCttaError, fmnistImages, fmnistLabels, methodContext, MODEL, ROOT, useFashionMnist, useWasm, weightValues } from './helpers.js';

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
});

/** An ER whose memory holds exactly one batch, so the replay batch is the previous batch (in some order). */
async function erAfterOneBatch(combine: 'separate' | 'concat') {
  const n = 8;
  const method = new ErMethod(erOptions.parse({ memorySize: n, replayBatch: n, combine, lr: 0.05 }));
  const ctx = await methodContext();
  await method.init(ctx);
  const [x1, y1] = [fmnistImages(0, n), fmnistLabels(0, n)];
  tf.dispose(await method.predict(x1));
  await method.adapt(x1, y1);
  return { method, ctx, x1, y1, x2: fmnistImages(n, n), y2: fmnistLabels(n, n) };
}

/** The SGD update lr * grad(loss) computed by hand on a copy of the network. */
async function expectedUpdate(loss: (logits: (x: tf.Tensor4D) => tf.Tensor2D) => tf.Scalar, weights: Map<string, Float32Array>, lr: number) {
  const { network } = await loadModel(MODEL);
  for (const [name, v] of network.namedWeights()) v.assign(tf.tensor(weights.get(name)!, v.shape));
  network.setNormStatistics('batch'); // no running-statistics update: the weights' update only
  const vars = network.trainableVariables();
  const { value, grads } = tf.variableGrads(() => loss((x) => network.logits(x)), vars);
  const out = new Map<string, Float32Array>();
  for (const v of vars) out.set(v.name, Float32Array.from(tf.tidy(() => v.sub(grads[v.name]!.mul(lr))).dataSync()));
  tf.dispose([value, ...Object.values(grads)]);
  const names = new Map([...network.namedTrainables()].map(([k, v]) => [v.name, k]));
  network.dispose();
  return new Map([...out].map(([k, v]) => [names.get(k)!, v]));
}

function maxDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>, names: Iterable<string>): number {
  let m = 0;
  for (const k of names) {
    const x = a.get(k)!;
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}

describe('ER', () => {
  it('separate: one step on CE(stream) + CE(replay), each averaged over its own batch', async () => {
    const { method, ctx, x1, y1, x2, y2 } = await erAfterOneBatch('separate');
    const before = weightValues(ctx.network);
    tf.dispose(await method.predict(x2));
    await method.adapt(x2, y2);
    const after = weightValues(ctx.network);
    const trained = [...ctx.network.namedTrainables().keys()];
    const separate = await expectedUpdate((f) => tf.add(crossEntropy(f(x2), y2), crossEntropy(f(x1), y1)) as tf.Scalar, before, 0.05);
    const concat = await expectedUpdate((f) => crossEntropy(f(tf.concat([x2, x1])), tf.concat([y2, y1])), before, 0.05);
    expect(maxDifference(after, separate, trained)).toBeLessThan(1e-4);
    // The two readings differ by far more on this batch, so the comparison above tells them apart
    // (1e-4 allows for float32 sums in another order: the replay batch comes back shuffled).
    expect(maxDifference(after, concat, trained)).toBeGreaterThan(1e-3);
    expect(method.diagnostics()).toMatchObject({ replayed: 8 });
    method.dispose();
    ctx.network.dispose();
    tf.dispose([x1, y1, x2, y2]);
  });

  it('concat: one step on the CE of one batch of both', async () => {
    const { method, ctx, x1, y1, x2, y2 } = await erAfterOneBatch('concat');
    const before = weightValues(ctx.network);
    tf.dispose(await method.predict(x2));
    await method.adapt(x2, y2);
    const trained = [...ctx.network.namedTrainables().keys()];
    const concat = await expectedUpdate((f) => crossEntropy(f(tf.concat([x2, x1])), tf.concat([y2, y1])), before, 0.05);
    expect(maxDifference(weightValues(ctx.network), concat, trained)).toBeLessThan(1e-4);
    method.dispose();
    ctx.network.dispose();
    tf.dispose([x1, y1, x2, y2]);
  });

  it('never replays a batch in its own step, and stores it afterwards (uint8, exact)', async () => {
    const method = new ErMethod(erOptions.parse({ memorySize: 16 }));
    const ctx = await methodContext();
    await method.init(ctx);
    const x = fmnistImages(0, 8);
    const y = fmnistLabels(0, 8);
    tf.dispose(await method.predict(x));
    await method.adapt(x, y);
    expect(method.diagnostics()).toMatchObject({ replayed: 0 });
    // 8 images of 28x28 bytes + 16 int32 labels, whatever was stored.
    expect(method.hostStateBytes()).toBe(16 * 784 + 16 * 4);
    const stored = (method as unknown as { memory: { sample(k: number): { images: Uint8Array; labels: Int32Array } } }).memory.sample(8);
    const pixels = Uint8Array.from(tf.tidy(() => x.mul(255).round()).dataSync());
    const labels = Array.from(y.dataSync());
    // Every stored image is one of the batch's images, bit for bit, with its label.
    for (let i = 0; i < 8; i++) {
      const img = stored.images.subarray(i * 784, (i + 1) * 784);
      const j = [...Array(8).keys()].find((k) => pixels.subarray(k * 784, (k + 1) * 784).every((p, q) => p === img[q]));
      expect(j).toBeDefined();
      expect(stored.labels[i]).toBe(labels[j!]);
    }
    method.dispose();
    ctx.network.dispose();
    tf.dispose([x, y]);
  });

  it('predicts with running statistics and changes nothing; training folds batch statistics in with momentum 0.1', async () => {
    const method = new ErMethod(erOptions.parse({}));
    const ctx = await methodContext();
    await method.init(ctx);
    const x = fmnistImages(0, 16);
    const y = fmnistLabels(0, 16);
    const before = weightValues(ctx.network);
    const p1 = await method.predict(x);
    const p2 = await method.predict(x);
    expect(weightValues(ctx.network)).toEqual(before);
    expect(Array.from(p1.dataSync())).toEqual(Array.from(p2.dataSync()));
    const frozen = tf.tidy(() => tf.softmax(ctx.network.logits(x)));
    expect(Math.max(...tf.tidy(() => tf.abs(frozen.sub(p1))).dataSync())).toBeLessThan(1e-6);
    // Training folds the batch's statistics in as PyTorch's model.train() does (momentum 0.1):
    // the same as one forward pass of a copy in batch mode with that momentum (the first batch
    // replays nothing, so the step makes one pass, with the pre-step weights).
    const running = (n: typeof ctx.network) => n.norms.flatMap((b) => [...b.movingMean!.dataSync(), ...b.movingVariance!.dataSync()]);
    const source = running(ctx.network);
    const twin = await ctx.network.clone();
    twin.setNormStatistics('batch', { momentum: 0.1 });
    tf.dispose(twin.logits(x));
    await method.adapt(x, y);
    const moved = running(ctx.network);
    const expected = running(twin);
    expect(Math.max(...moved.map((v, i) => Math.abs(v - expected[i]!)))).toBeLessThan(1e-6);
    expect(Math.max(...moved.map((v, i) => Math.abs(v - source[i]!)))).toBeGreaterThan(1e-3);
    twin.dispose();
    tf.dispose([p1, p2, frozen, x, y]);
    method.dispose();
    ctx.network.dispose();
  });

  it('refuses a model whose head does not span the dataset', async () => {
    const { network } = await loadModel(`${ROOT}models/fmnist-resnet8-base5`);
    const method = new ErMethod(erOptions.parse({}));
    const ctx = await methodContext({ network, numClasses: 10, headClasses: [0, 1, 2, 3, 4] });
    await expectCttaError(() => method.init(ctx), /head over all 10 classes.*5 outputs/);
    network.dispose();
  });
});
