/**
 * NHL (src/methods/nhl.ts): the soft Hebbian step against a SoftHebb step computed by hand, that
 * the kernel's update depends on the layer's input and weights only (not on the loss or its
 * optimizer), that the modulator's step lowers the batch entropy, that only the first conv
 * kernel and the modulator change, where the update happens (predict, before the prediction;
 * adapt and evaluate change nothing), the Hebbian layer's input for models whose first conv does
 * not read the image, and the method contract.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMethod } from '../src/methods/registry.js';
import { NhlMethod, nhlOptions } from '../src/methods/nhl.js';
import { findHebbianLayer, findModulator, hebbianInput } from '../src/methods/nhl/layers.js';
import { axisGeometry, softHebbDelta, softHebbStep, type ConvGeometry } from '../src/methods/nhl/soft-hebb.js';
import { meanEntropy } from '../src/methods/tent.js';
import { Network } from '../src/models/network.js';
import { changedWeights, expectCttaError, fmnistImages, maxAbsDiff, methodContext, noiseBatch, useFashionMnist, useWasm, weightValues } from './helpers.js';

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
});

/** A SoftHebb step in float64 loops over NHWC arrays (SoftHebb's hebbconv.py, p = 2), normalised. */
function softHebbByHand(x: number[], [n, h, w, cin]: number[], k: number[], [kh, kw, , cout]: number[], g: ConvGeometry, beta: number): number[] {
  const r = axisGeometry(h!, kh!, g.strides[0], g.dilations[0], g.padding);
  const c = axisGeometry(w!, kw!, g.strides[1], g.dilations[1], g.padding);
  const X = (b: number, i: number, j: number, ch: number) => (i < 0 || j < 0 || i >= h! || j >= w! ? 0 : x[((b * h! + i) * w! + j) * cin! + ch]!);
  const K = (i: number, j: number, ch: number, o: number) => k[((i * kw! + j) * cin! + ch) * cout! + o]!;
  const yx = new Array<number>(k.length).fill(0);
  const yu = new Array<number>(cout!).fill(0);
  for (let b = 0; b < n!; b++) {
    for (let p = 0; p < r.out; p++) {
      for (let q = 0; q < c.out; q++) {
        // The receptive field of output (p, q), and the responses u of every channel.
        const field = (i: number, j: number, ch: number) => X(b, p * g.strides[0] - r.padBefore + i * g.dilations[0], q * g.strides[1] - c.padBefore + j * g.dilations[1], ch);
        const u = new Array<number>(cout!).fill(0);
        for (let o = 0; o < cout!; o++) for (let i = 0; i < kh!; i++) for (let j = 0; j < kw!; j++) for (let ch = 0; ch < cin!; ch++) u[o]! += K(i, j, ch, o) * field(i, j, ch);
        const m = Math.max(...u);
        const e = u.map((v) => Math.exp(beta * (v - m)));
        const z = e.reduce((a, v) => a + v, 0);
        const y = e.map((v) => v / z);
        for (let o = 0; o < cout!; o++) {
          yu[o]! += y[o]! * u[o]!;
          for (let i = 0; i < kh!; i++) for (let j = 0; j < kw!; j++) for (let ch = 0; ch < cin!; ch++) yx[((i * kw! + j) * cin! + ch) * cout! + o]! += y[o]! * field(i, j, ch);
        }
      }
    }
  }
  const delta = yx.map((v, idx) => v - yu[idx % cout!]! * k[idx]!);
  const max = Math.max(...delta.map(Math.abs));
  return delta.map((v) => v / (max + 1e-30));
}

const values = (count: number, a: number, b: number) => Array.from({ length: count }, (_, i) => Math.sin(a * i + b) * (1 + (i % 3)) * 0.5);

describe('NHL soft Hebbian rule', () => {
  const shapeX = [2, 5, 6, 2];
  const shapeK = [3, 3, 2, 3];
  const xs = values(2 * 5 * 6 * 2, 1.3, 0.2).map((v) => Math.abs(v));
  const ks = values(3 * 3 * 2 * 3, 0.7, 0.5);
  const cases: [string, ConvGeometry][] = [
    ['same, stride 1', { padding: 'same', strides: [1, 1], dilations: [1, 1] }],
    ['valid, stride 2', { padding: 'valid', strides: [2, 2], dilations: [1, 1] }],
    ['same, stride 2', { padding: 'same', strides: [2, 2], dilations: [1, 1] }],
    ['same, dilation 2', { padding: 'same', strides: [1, 1], dilations: [2, 2] }],
  ];

  it.each(cases)('equals a SoftHebb step computed by hand (%s)', (_, geometry) => {
    for (const beta of [1, 10]) {
      const expected = softHebbByHand(xs, shapeX, ks, shapeK, geometry, beta);
      const x = tf.tensor4d(xs, shapeX as [number, number, number, number]);
      const k = tf.tensor4d(ks, shapeK as [number, number, number, number]);
      const delta = softHebbDelta(x, k, geometry, beta);
      const got = delta.dataSync();
      for (let i = 0; i < expected.length; i++) expect(Math.abs(got[i]! - expected[i]!)).toBeLessThan(2e-5);
      expect(Math.max(...Array.from(got, Math.abs))).toBeCloseTo(1, 5);
      tf.dispose([x, k, delta]);
    }
  });

  it('a step moves the kernel by lr times the normalised change, and is a pure function of (input, kernel)', () => {
    const geometry: ConvGeometry = { padding: 'same', strides: [1, 1], dilations: [1, 1] };
    const x = tf.tensor4d(xs, shapeX as [number, number, number, number]);
    const kernel = tf.variable(tf.tensor4d(ks, shapeK as [number, number, number, number]));
    const lr = 0.01;
    const expected = softHebbByHand(xs, shapeX, ks, shapeK, geometry, 10).map((d, i) => ks[i]! + lr * d);
    const again = softHebbDelta(x, kernel as unknown as tf.Tensor4D, geometry, 10);
    const first = Float32Array.from(again.dataSync());
    softHebbStep(kernel, x, geometry, 10, lr);
    const got = kernel.dataSync();
    for (let i = 0; i < expected.length; i++) expect(Math.abs(got[i]! - expected[i]!)).toBeLessThan(1e-6);
    // The same (input, kernel) gives the same bits: no hidden state, no randomness.
    kernel.assign(tf.tensor4d(ks, shapeK as [number, number, number, number]));
    const second = softHebbDelta(x, kernel as unknown as tf.Tensor4D, geometry, 10);
    expect(Array.from(second.dataSync())).toEqual(Array.from(first));
    tf.dispose([x, kernel, again, second]);
  });
});

/** A fresh NHL on the shipped model (the first Conv2D is `stem_conv`, its modulator `stem_norm`). */
async function nhl(options: Record<string, unknown> = {}) {
  const ctx = await methodContext();
  const method = new NhlMethod(nhlOptions.parse(options));
  await method.init(ctx);
  return { method, ctx, network: ctx.network };
}

describe('NHL', () => {
  it('acts on the first conv (Hebbian) and the norm layer after it (modulator)', async () => {
    const { method, network } = await nhl();
    expect(method.adapted).toEqual({ kernel: 'stem_conv/kernel', modulator: 'stem_norm' });
    method.dispose();
    network.dispose();
  });

  it("the kernel's update is SoftHebb's on the batch alone: the same whatever the loss's optimizer, and no labels are involved", async () => {
    const x = fmnistImages(0, 16);
    const kernels: Float32Array[] = [];
    let expected: Float32Array | undefined;
    for (const options of [{}, { optimizer: 'sgd', lr: 0.5 }]) {
      const { method, network } = await nhl(options);
      const kernel = network.namedWeights().get('stem_conv/kernel')!;
      expected ??= tf.tidy(() => {
        const g: ConvGeometry = { padding: 'same', strides: [1, 1], dilations: [1, 1] };
        return Float32Array.from(tf.add(kernel, tf.mul(softHebbDelta(x, kernel as unknown as tf.Tensor4D, g, 10), 1e-3)).dataSync());
      });
      tf.dispose(await method.predict(x)); // predict gets no labels
      kernels.push(Float32Array.from(kernel.dataSync()));
      method.dispose();
      network.dispose();
    }
    expect(Array.from(kernels[1]!)).toEqual(Array.from(kernels[0]!));
    expect(Array.from(kernels[0]!)).toEqual(Array.from(expected!));
    x.dispose();
  });

  it('one modulator step lowers the mean entropy of the batch', async () => {
    const x = noiseBatch(7, 32);
    for (const options of [{}, { optimizer: 'sgd', lr: 0.01 }, { normStatistics: 'running' }]) {
      const { method, network } = await nhl(options);
      tf.dispose(await method.predict(x));
      // The entropy right before the modulator's step (after the Hebbian one), and after it.
      const before = method.diagnostics()!['entropy']!;
      const after = tf.tidy(() => meanEntropy(network.logits(x)).dataSync()[0]!);
      expect(after).toBeLessThan(before);
      method.dispose();
      network.dispose();
    }
    x.dispose();
  });

  it('changes only the first conv kernel and the modulator; every other weight and statistic stays bit-identical', async () => {
    const { method, network } = await nhl();
    const before = weightValues(network);
    for (let b = 0; b < 3; b++) {
      const x = fmnistImages(100 + 16 * b, 16);
      tf.dispose(await method.predict(x));
      await method.adapt(x);
      x.dispose();
    }
    expect(changedWeights(network, before).sort()).toEqual(['stem_conv/kernel', 'stem_norm/beta', 'stem_norm/gamma']);
    method.dispose();
    network.dispose();
  });

  it('updates in predict, before predicting: the prediction is the updated network\'s; adapt and evaluate change nothing', async () => {
    const { method, network } = await nhl();
    const x = fmnistImages(200, 16);
    const source = tf.tidy(() => tf.softmax(network.logits(x)));
    const p = await method.predict(x);
    const updated = tf.tidy(() => tf.softmax(network.logits(x)));
    expect(maxAbsDiff(p, updated)).toBe(0);
    expect(maxAbsDiff(p, source)).toBeGreaterThan(1e-5);

    const afterPredict = weightValues(network);
    await method.adapt(x);
    expect(changedWeights(network, afterPredict)).toEqual([]);

    const diagnostics = JSON.stringify(method.diagnostics());
    const held = fmnistImages(4000, 16);
    const e = await method.evaluate(held);
    expect(changedWeights(network, afterPredict)).toEqual([]);
    expect(JSON.stringify(method.diagnostics())).toBe(diagnostics);
    // evaluate is the current network as it is (no step before it).
    const plain = tf.tidy(() => tf.softmax(network.logits(held)));
    expect(maxAbsDiff(e, plain)).toBe(0);
    tf.dispose([x, source, p, updated, held, e, plain]);
    method.dispose();
    network.dispose();
  });

  it('reads the Hebbian layer\'s input through a hook when the first conv does not read the image', () => {
    const input = tf.input({ shape: [6, 6, 1] });
    let h = tf.layers.activation({ activation: 'tanh', name: 'pre' }).apply(input) as tf.SymbolicTensor;
    h = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, name: 'conv' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.batchNormalization({ name: 'bn' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(h) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 3, name: 'head' }).apply(h) as tf.SymbolicTensor;
    const network = new Network(tf.model({ inputs: input, outputs: out }), { architecture: 'tiny', options: {} });
    const hebbian = findHebbianLayer(network);
    expect(hebbian.readsImage).toBe(false);
    expect(findModulator(network, hebbian.layer).name).toBe('bn');
    const x = tf.randomUniform([2, 6, 6, 1], -2, 2, 'float32', 3) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const got = hebbianInput(network, hebbian, x);
    expect(tf.memory().numTensors).toBe(before + 1);
    const want = tf.tanh(x);
    expect(maxAbsDiff(got, want)).toBe(0);
    expect(network.hooks.length).toBe(0);
    tf.dispose([x, got, want]);
    network.dispose();
  });

  it('refuses a model without a conv layer, in one line', async () => {
    const input = tf.input({ shape: [4, 4, 1] });
    const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 3, name: 'head' }).apply(pooled) as tf.SymbolicTensor;
    const network = new Network(tf.model({ inputs: input, outputs: out }), { architecture: 'tiny', options: {} });
    const ctx = await methodContext({ network, numClasses: 3, headClasses: [0, 1, 2] });
    const method = createMethod('nhl');
    await expectCttaError(() => method.init(ctx), /NHL found no Conv2D layer/);
    method.dispose();
    network.dispose();
  });
});
