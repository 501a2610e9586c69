/**
 * EAR's defining properties: the HDC (HDFF) detector separates the source domain from a strong
 * shift (AUROC > 0.9, clean vs gaussian noise severity 5 through the shipped ResNet-8), `auroc`
 * is the Mann-Whitney statistic, a detected shift adds one adaptor which the shifted images are
 * then routed to while source images keep the base path, a fresh adaptor is the base path, the
 * encoder stays bit-identical, and the method keeps the contract.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { auroc, EarMethod, earOptions, type EarOptions } from '../src/methods/ear.js';
import { Adaptor } from '../src/methods/ear/adaptor.js';
import { encoderPass, disposePass, selectTapLayers, tapChannels } from '../src/methods/ear/taps.js';
import { loadModel } from '../src/models/checkpoint.js';
import { corruptBatch } from '../src/streams/corruptions/index.js';
import { Rng } from '../src/util/rng.js';
import { changedWeights, expectCttaError, fmnistCleanImages, fmnistImages, fmnistLabels, methodContext, ROOT, useFashionMnist, useWasm, weightValues } from './helpers.js';

/** Small HDC space and calibration set: the properties do not depend on their size. */
const CHEAP = { hyperDim: 2048, calibrationSize: 500 };

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
});

/** `n` test images from `start` under gaussian noise at severity 5 (the corruption engine, seed 0: deterministic). */
async function noisy(start: number, n: number): Promise<tf.Tensor4D> {
  const clean = fmnistImages(start, n);
  const bytes = Uint8Array.from(tf.tidy(() => tf.round(tf.mul(clean, 255))).dataSync());
  clean.dispose();
  const out = await corruptBatch(bytes, n, 28, 28, 1, 'gaussian_noise', 5, { seed: 0, startIndex: start });
  return tf.tidy(() => tf.div(tf.tensor4d(out, [n, 28, 28, 1], 'int32'), 255) as tf.Tensor4D);
}

async function ear(options: Partial<EarOptions> = {}) {
  const method = new EarMethod(earOptions.parse({ ...CHEAP, ...options }));
  const ctx = await methodContext({ cleanImages: fmnistCleanImages() });
  return { method, ctx };
}

function accuracy(probs: tf.Tensor2D, labels: tf.Tensor1D): number {
  return tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(probs, 1), labels), 'float32')).dataSync()[0]!);
}

describe('auroc', () => {
  it('equals the hand-computed Mann-Whitney value, ties counting one half', () => {
    // Pairs (out > in): 0.8 beats all 3; 0.4 beats 0.1 and 0.35 and ties 0.4 (1/2); 0.2 beats 0.1.
    expect(auroc([0.1, 0.4, 0.35], [0.8, 0.4, 0.2])).toBeCloseTo(6.5 / 9, 12);
    expect(auroc([0, 1], [2, 3])).toBe(1);
    expect(auroc([2, 3], [0, 1])).toBe(0);
    expect(auroc([1, 1], [1])).toBe(0.5);
  });

  it('agrees with counting every pair, on scores with many ties', () => {
    const rng = Rng.derive(0, 'auroc-test');
    const a = Array.from({ length: 57 }, () => rng.int(0, 9));
    const b = Array.from({ length: 43 }, () => rng.int(3, 12));
    let wins = 0;
    for (const x of a) for (const y of b) wins += y > x ? 1 : y === x ? 0.5 : 0;
    expect(auroc(a, b)).toBeCloseTo(wins / (a.length * b.length), 12);
  });

  it('refuses an empty side or a non-finite score', async () => {
    await expectCttaError(() => auroc([], [1]), /both sides/);
    await expectCttaError(() => auroc([NaN], [1]), /not a finite number/);
  });
});

describe('EAR', () => {
  it('HDC detector: clean vs gaussian noise (severity 5) images have AUROC > 0.9; the batch diagnostic is their mean OOD score', async () => {
    const { method, ctx } = await ear();
    await method.init(ctx);
    const clean = fmnistImages(0, 256);
    const shifted = await noisy(256, 256);
    const scoresIn = method.oodScores(clean);
    const scoresOut = method.oodScores(shifted);
    const value = auroc(scoresIn, scoresOut);
    expect(value).toBeGreaterThan(0.9);
    // Determinism: the same detector scores the same images the same, bit for bit.
    expect(method.oodScores(clean)).toEqual(scoresIn);
    // The per-batch diagnostic: HDFF's OOD score (minus the best cosine similarity to a source class descriptor), averaged.
    tf.dispose(await method.predict(shifted));
    const mean = scoresOut.reduce((s, v) => s + v, 0) / scoresOut.length;
    expect(method.diagnostics()!.oodScore).toBeCloseTo(mean, 5);
    tf.dispose([clean, shifted]);
    method.dispose();
    ctx.network.dispose();
  });

  it('a fresh adaptor predicts what the base path does (zero-initialised correction, copied head)', async () => {
    const { network } = await loadModel(`${ROOT}models/fmnist-resnet8`);
    const layers = selectTapLayers(network, 'blocks');
    expect(layers.map((l) => l.name)).toEqual(['stem_relu', 's1_b0_relu2', 's2_b0_relu2', 's3_b0_relu2']);
    const x = fmnistImages(0, 16);
    const pass = encoderPass(network, layers, x);
    const head = network.model.layers.at(-1)!.getWeights();
    const inputDim = tapChannels(layers).reduce((a, b) => a + b, 0);
    const adaptor = new Adaptor({ inputDim, featureDim: network.featureDim, hidden: 8, numClasses: 10 }, { kernel: Float32Array.from(head[0]!.dataSync()), bias: Float32Array.from(head[1]!.dataSync()) }, Rng.derive(0, 't'));
    const z = tf.concat(pass.pooled, 1) as tf.Tensor2D;
    const viaAdaptor = adaptor.logits(z, pass.features);
    expect(Math.max(...tf.tidy(() => tf.abs(tf.sub(viaAdaptor, pass.logits))).dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, z, viaAdaptor]);
    disposePass(pass);
    adaptor.dispose();
    network.dispose();
  });

  it('routes source images to the base path, adds one adaptor at the shift and routes the shifted domain to it; the encoder stays bit-identical', async () => {
    const { method, ctx } = await ear();
    const before = weightValues(ctx.network);
    await method.init(ctx);
    const n = 64;
    // Two clean batches: the source domain, nothing added.
    for (let b = 0; b < 2; b++) {
      const x = fmnistImages(b * n, n);
      const y = fmnistLabels(b * n, n);
      tf.dispose(await method.predict(x));
      expect(method.diagnostics()!.routedToAdaptors).toBe(0);
      await method.adapt(x, y);
      expect(method.diagnostics()).toMatchObject({ newAdaptor: 0, domain: 0 });
      tf.dispose([x, y]);
    }
    expect(method.adaptorCount).toBe(0);
    // Six batches of gaussian noise: the first is a shift (adaptor 1), the rest train adaptor 1.
    for (let b = 0; b < 6; b++) {
      const start = 1000 + b * n;
      const x = await noisy(start, n);
      const y = fmnistLabels(start, n);
      tf.dispose(await method.predict(x));
      await method.adapt(x, y);
      expect(method.diagnostics()).toMatchObject({ newAdaptor: b === 0 ? 1 : 0, domain: 1 });
      tf.dispose([x, y]);
    }
    expect(method.adaptorCount).toBe(1);

    // Unseen images: clean ones keep the base path, noisy ones take adaptor 1.
    const clean = fmnistImages(2000, 128);
    const shifted = await noisy(2200, 128);
    const share = (routes: Int32Array, k: number) => routes.filter((r) => r === k).length / routes.length;
    expect(share(method.routes(clean), 0)).toBeGreaterThanOrEqual(0.9);
    expect(share(method.routes(shifted), 1)).toBeGreaterThanOrEqual(0.9);
    // The trained adaptor classifies the shifted domain better than the base path.
    const labels = fmnistLabels(2200, 128);
    const routed = await method.evaluate(shifted);
    const base = tf.tidy(() => tf.softmax(ctx.network.logits(shifted)));
    expect(accuracy(routed, labels)).toBeGreaterThan(accuracy(base, labels) + 0.05);

    expect(changedWeights(ctx.network, before)).toEqual([]);
    tf.dispose([clean, shifted, labels, routed, base]);
    method.dispose();
    ctx.network.dispose();
  });

  it('refuses a model whose head does not span the dataset, and a scenario without clean images', async () => {
    const { network } = await loadModel(`${ROOT}models/fmnist-resnet8-base5`);
    const subset = new EarMethod(earOptions.parse(CHEAP));
    await expectCttaError(async () => subset.init(await methodContext({ network, numClasses: 10, headClasses: [0, 1, 2, 3, 4], cleanImages: fmnistCleanImages() })), /head has 5 outputs/);
    network.dispose();
    const { method, ctx } = await ear();
    await expectCttaError(() => method.init({ ...ctx, cleanImages: undefined }), /clean images/);
    method.dispose();
    ctx.network.dispose();
  });
});
