/**
 * UER's defining properties: the stream loss sees only the angle between features and class
 * weight vectors (unchanged when either is rescaled by a positive factor, unlike the replay
 * loss), its gradients are right (finite differences), a step is SGD on stream cosine CE +
 * replay dot-product CE (the stream-only first step never touches the head bias), predictions are
 * the softmax of the dot-product logits, and the method keeps the contract.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveMethodOptions } from '../src/methods/registry.js';
import { UerMethod, uerOptions, type UerOptions } from '../src/methods/uer.js';
import { cosineLogits, dotProductLogits, replayLoss, streamLoss } from '../src/methods/uer/losses.js';
import { createModel } from '../src/models/registry.js';
import type { Network } from '../src/models/network.js';
import { Rng } from '../src/util/rng.js';
import { fmnistImages, fmnistLabels, maxAbsDiff, methodContext, useFashionMnist, useWasm, weightValues } from './helpers.js';

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
});

const TEMPERATURE = 0.09;

/** Seeded normal values, as a plain array. */
function normals(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** Tiny inputs: features [3, 4], kernel [4, 5], bias [5], labels [3]. */
function tiny(seed = 1) {
  const rng = Rng.derive(seed, 'uer-test');
  return {
    features: tf.tensor2d(normals(rng, 12), [3, 4]),
    kernel: tf.tensor2d(normals(rng, 20), [4, 5]),
    bias: tf.tensor1d(normals(rng, 5)),
    labels: tf.tensor1d([0, 3, 4], 'int32'),
  };
}

/** max |t| (tidied). */
const maxAbs = (t: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!);

const value = (t: tf.Scalar) => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};

/** `m` with row (axis 0) or column (axis 1) `i` multiplied by `factor`. */
function rescaled(m: tf.Tensor2D, axis: 0 | 1, i: number, factor: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [r, c] = m.shape;
    const scale = tf.buffer([r, c], 'float32');
    for (let a = 0; a < r; a++) for (let b = 0; b < c; b++) scale.set((axis === 0 ? a : b) === i ? factor : 1, a, b);
    return tf.mul(m, scale.toTensor()) as tf.Tensor2D;
  });
}

describe('UER losses', () => {
  it('the stream loss is unchanged when a class weight vector or a feature vector is rescaled; the replay loss is not', () => {
    const { features, kernel, bias, labels } = tiny();
    const stream = (f: tf.Tensor2D, w: tf.Tensor2D) => value(streamLoss(f, w, labels, TEMPERATURE));
    const replay = (f: tf.Tensor2D, w: tf.Tensor2D) => value(replayLoss(f, w, bias, labels));
    const s0 = stream(features, kernel);
    const r0 = replay(features, kernel);
    for (const factor of [0.3, 4]) {
      // Class 3 is a labelled class (its weight vector is in the target logit), class 1 is not.
      for (const c of [1, 3]) {
        const w = rescaled(kernel, 1, c, factor);
        expect(Math.abs(stream(features, w) - s0)).toBeLessThan(1e-5 * Math.abs(s0));
        expect(Math.abs(replay(features, w) - r0)).toBeGreaterThan(1e-2);
        w.dispose();
      }
      for (const i of [0, 2]) {
        const f = rescaled(features, 0, i, factor);
        expect(Math.abs(stream(f, kernel) - s0)).toBeLessThan(1e-5 * Math.abs(s0));
        expect(Math.abs(replay(f, kernel) - r0)).toBeGreaterThan(1e-2);
        f.dispose();
      }
    }
    // A negative factor reverses the angle: only positive rescaling is a symmetry.
    const flipped = rescaled(kernel, 1, 3, -1);
    expect(Math.abs(stream(features, flipped) - s0)).toBeGreaterThan(1e-2);
    tf.dispose([features, kernel, bias, labels, flipped]);
  });

  it('the stream loss is the CE of cos(theta) / temperature, computed here in float64', () => {
    const { features, kernel, bias, labels } = tiny(2);
    const f = features.arraySync();
    const w = kernel.arraySync();
    const y = Array.from(labels.dataSync());
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, a) => s + a * a, 0));
    let expected = 0;
    for (let i = 0; i < 3; i++) {
      const logits = [0, 1, 2, 3, 4].map((c) => {
        const col = w.map((row) => row[c]!);
        return f[i]!.reduce((s, a, d) => s + a * col[d]!, 0) / (norm(f[i]!) * norm(col)) / TEMPERATURE;
      });
      const lse = Math.log(logits.reduce((s, z) => s + Math.exp(z), 0));
      expected += (lse - logits[y[i]!]!) / 3;
    }
    expect(Math.abs(value(streamLoss(features, kernel, labels, TEMPERATURE)) - expected)).toBeLessThan(1e-5 * expected);
    // The cosine logits ignore the bias and lie in [-1/T, 1/T]; the dot-product logits are h W + b.
    const cos = cosineLogits(features, kernel, TEMPERATURE);
    expect(maxAbs(cos)).toBeLessThanOrEqual(1 / TEMPERATURE + 1e-4);
    const dot = dotProductLogits(features, kernel, bias);
    const byHand = tf.tidy(() => tf.add(tf.matMul(features, kernel), bias));
    expect(maxAbsDiff(dot, byHand)).toBeLessThan(1e-6);
    tf.dispose([features, kernel, bias, labels, cos, dot, byHand]);
  });

  it('the gradients of the stream loss match finite differences, and are orthogonal to the rescaled vectors', () => {
    const { features, kernel, bias, labels } = tiny(3);
    const loss = (f: tf.Tensor2D, w: tf.Tensor2D) => streamLoss(f, w, labels, TEMPERATURE);
    const [gf, gw] = tf.grads((f, w) => loss(f as tf.Tensor2D, w as tf.Tensor2D))([features, kernel]) as [tf.Tensor2D, tf.Tensor2D];
    const inputs = [features, kernel] as const;
    const analytic = [gf.arraySync(), gw.arraySync()];
    // Central differences with Richardson extrapolation (error O(h^4)), on the float32 loss itself.
    const at = (which: 0 | 1, r: number, c: number, h: number) => {
      const moved = tf.tidy(() => tf.add(inputs[which], oneHot2d(inputs[which].shape, r, c, h)) as tf.Tensor2D);
      const v = value(which === 0 ? loss(moved, kernel) : loss(features, moved));
      moved.dispose();
      return v;
    };
    const central = (which: 0 | 1, r: number, c: number, h: number) => (at(which, r, c, h) - at(which, r, c, -h)) / (2 * h);
    let worst = 0;
    for (const which of [0, 1] as const) {
      const [rows, cols] = inputs[which].shape;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const h = 1e-2;
          const numeric = (4 * central(which, r, c, h / 2) - central(which, r, c, h)) / 3;
          const g = analytic[which]![r]![c]!;
          worst = Math.max(worst, Math.abs(numeric - g) / Math.max(1, Math.abs(g)));
        }
      }
    }
    expect(worst).toBeLessThan(2e-3);
    // Scale invariance in differential form: d/da L(a h_i) = g_i . h_i = 0, and likewise per column of W.
    const rowDots = tf.tidy(() => tf.sum(tf.mul(gf, features), 1));
    const colDots = tf.tidy(() => tf.sum(tf.mul(gw, kernel), 0));
    expect(Math.max(maxAbs(rowDots), maxAbs(colDots))).toBeLessThan(1e-4);
    // ...which the replay loss's gradient is not.
    const [rf] = tf.grads((f) => replayLoss(f as tf.Tensor2D, kernel, bias, labels))([features]) as [tf.Tensor2D];
    const replayDots = tf.tidy(() => tf.sum(tf.mul(rf, features), 1));
    expect(maxAbs(replayDots)).toBeGreaterThan(1e-2);
    tf.dispose([features, kernel, bias, labels, gf, gw, rowDots, colDots, rf, replayDots]);
  });
});

/** A [rows, cols] tensor that is `h` at (r, c) and 0 elsewhere. */
function oneHot2d(shape: number[], r: number, c: number, h: number): tf.Tensor2D {
  const b = tf.buffer(shape as [number, number], 'float32');
  b.set(h, r, c);
  return b.toTensor() as tf.Tensor2D;
}

/** A fresh tiny zoo network (ResNet-8 of width 4, head over the 10 Fashion-MNIST classes). */
function tinyNetwork(seed = 7): Network {
  return createModel('resnet8', { width: 4, seed });
}

async function uer(options: Partial<UerOptions> = {}, network = tinyNetwork()) {
  const method = new UerMethod(uerOptions.parse(options));
  const ctx = await methodContext({ network });
  await method.init(ctx);
  return { method, network };
}

/** One SGD step by hand on a copy of `weights`: the update lr * grad of `loss(features)`, by weight name. */
function expectedUpdate(weights: Map<string, Float32Array>, lr: number, loss: (net: Network) => tf.Scalar): Map<string, Float32Array> {
  const net = tinyNetwork();
  for (const [name, v] of net.namedWeights()) v.assign(tf.tensor(weights.get(name)!, v.shape));
  net.setNormStatistics('batch'); // batch statistics, no running update: the weights' update only
  const named = [...net.namedTrainables()];
  const { value: v, grads } = tf.variableGrads(() => loss(net), named.map(([, w]) => w));
  const out = new Map<string, Float32Array>();
  for (const [name, w] of named) {
    const g = grads[w.name];
    out.set(name, Float32Array.from(g ? tf.tidy(() => w.sub(g.mul(lr))).dataSync() : w.dataSync()));
  }
  tf.dispose([v, ...Object.values(grads)]);
  net.dispose();
  return out;
}

function maxDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let m = 0;
  for (const [k, y] of b) {
    const x = a.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}

describe('UER', () => {
  it('steps by SGD on CE(cosine logits / T, stream) + CE(dot-product logits, replay); the stream-only step leaves the head bias alone', async () => {
    const n = 8;
    const lr = 0.05;
    const { method, network } = await uer({ memorySize: n, replayBatch: n, lr });
    const { kernel, bias } = network.headVariables();
    const [x1, y1, x2, y2] = [fmnistImages(0, n), fmnistLabels(0, n), fmnistImages(n, n), fmnistLabels(n, n)];
    const trainedNames = [...network.namedTrainables().keys()];
    const only = (m: Map<string, Float32Array>) => new Map(trainedNames.map((k) => [k, m.get(k)!]));

    // Step 1: the memory is empty, so the stream's cosine CE alone; the bias gets no gradient.
    const w0 = weightValues(network);
    const kernel0 = tf.clone(kernel);
    const bias0 = Float32Array.from(bias!.dataSync());
    tf.dispose(await method.predict(x1));
    await method.adapt(x1, y1);
    expect(method.diagnostics()).toMatchObject({ replayed: 0 });
    const streamOnly = expectedUpdate(w0, lr, (net) => streamLoss(net.features(x1), net.headVariables().kernel as tf.Tensor2D, y1, TEMPERATURE));
    expect(maxDifference(weightValues(network), only(streamOnly))).toBeLessThan(1e-5);
    expect(Array.from(bias!.dataSync())).toEqual(Array.from(bias0));
    // A gradient orthogonal to each column only lengthens it (||w - lr g||^2 = ||w||^2 + lr^2 ||g||^2).
    const norms = (t: tf.Tensor) => tf.tidy(() => tf.norm(t, 'euclidean', 0)).arraySync() as number[];
    const before = norms(kernel0);
    norms(kernel).forEach((after, c) => expect(after).toBeGreaterThanOrEqual(before[c]! - 1e-6));

    // Step 2: the memory holds batch 1 (all of it, in some order): stream cosine CE + replay dot CE.
    const w1 = weightValues(network);
    tf.dispose(await method.predict(x2));
    await method.adapt(x2, y2);
    expect(method.diagnostics()).toMatchObject({ replayed: n });
    const both = expectedUpdate(w1, lr, (net) => {
      const head = net.headVariables();
      const k = head.kernel as tf.Tensor2D;
      return tf.add(streamLoss(net.features(x2), k, y2, TEMPERATURE), replayLoss(net.features(x1), k, head.bias as tf.Tensor1D, y1)) as tf.Scalar;
    });
    // Plain ER's loss (dot-product CE on both) is far from it, so the comparison tells them apart.
    const er = expectedUpdate(w1, lr, (net) => {
      const head = net.headVariables();
      const k = head.kernel as tf.Tensor2D;
      const b = head.bias as tf.Tensor1D;
      return tf.add(replayLoss(net.features(x2), k, b, y2), replayLoss(net.features(x1), k, b, y1)) as tf.Scalar;
    });
    const after = weightValues(network);
    expect(maxDifference(after, only(both))).toBeLessThan(1e-4);
    expect(maxDifference(after, only(er))).toBeGreaterThan(1e-3);
    // The replay loss does reach the bias.
    const b0 = tf.tensor(bias0);
    expect(maxAbsDiff(bias!, b0)).toBeGreaterThan(1e-6);
    b0.dispose();
    method.dispose();
    network.dispose();
    tf.dispose([x1, y1, x2, y2, kernel0]);
  });

  it('predicts (and evaluates) the softmax of the dot-product logits, in inference mode', async () => {
    for (const bias of ['keep', 'drop'] as const) {
      const { method, network } = await uer({ memorySize: 16, bias });
      for (let b = 0; b < 3; b++) {
        const [x, y] = [fmnistImages(16 * b, 16), fmnistLabels(16 * b, 16)];
        tf.dispose(await method.predict(x));
        await method.adapt(x, y);
        tf.dispose([x, y]);
      }
      const x = fmnistImages(100, 16);
      const p = await method.predict(x);
      const e = await method.evaluate(x);
      const head = network.headVariables();
      // Running statistics (inference mode), as the network is left between steps.
      const dot = tf.tidy(() => tf.softmax(bias === 'keep' ? network.logits(x) : tf.matMul(network.features(x), head.kernel)));
      const cos = tf.tidy(() => tf.softmax(cosineLogits(network.features(x), head.kernel as tf.Tensor2D, TEMPERATURE)));
      expect(maxAbsDiff(p, dot)).toBeLessThan(1e-6);
      expect(maxAbsDiff(e, dot)).toBeLessThan(1e-6);
      expect(maxAbsDiff(p, cos)).toBeGreaterThan(1e-2);
      if (bias === 'drop') {
        // The bias was trained by nothing and is left out: it is still the zoo's zeros.
        expect(maxAbs(head.bias!)).toBe(0);
      }
      tf.dispose([x, p, e, dot, cos]);
      method.dispose();
      network.dispose();
    }
  });

  it('has ER-like defaults and the authors\' cosine temperature', () => {
    expect(resolveMethodOptions('uer', {}, 'cifar10')).toEqual({
      memorySize: 200,
      replayBatch: 10,
      policy: 'reservoir',
      temperature: 0.09,
      bias: 'keep',
      optimizer: 'sgd',
      lr: 0.1,
      momentum: 0,
      weightDecay: 0,
    });
    expect(() => uerOptions.parse({ temperature: 0 })).toThrow();
  });
});
