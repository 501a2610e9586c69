import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMethod } from '../src/methods/registry.js';
import { samPerturbation, SarMethod, sarLearningRate, sarOptions, updateLossEma } from '../src/methods/sar.js';
import type { MethodContext } from '../src/methods/types.js';
import type { Network } from '../src/models/network.js';
import { changedWeights, maxAbsDiff, methodContext, mixedBatch, noiseBatch, sourceNetwork, useFashionMnist, useWasm, weightValues } from './helpers.js';

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
});

const E0 = 0.4 * Math.log(10);

const context = (): Promise<MethodContext> => methodContext();
const entropies = (net: Network, x: tf.Tensor4D) =>
  tf.tidy(() => {
    const logp = tf.logSoftmax(net.logits(x));
    return Array.from(tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1)).dataSync());
  });
/** Gradient and value of the mean entropy over the masked samples. */
const maskedGrad = (net: Network, x: tf.Tensor4D, mask: boolean[]) => {
  const params = net.normAffineVariables();
  const n = mask.filter(Boolean).length;
  const { value, grads } = tf.variableGrads(() => {
    const logp = tf.logSoftmax(net.logits(x));
    const h = tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1));
    return tf.div(tf.sum(tf.mul(h, tf.tensor1d(mask.map(Number)))), Math.max(n, 1)) as tf.Scalar;
  }, params);
  const g = params.map((p) => Float32Array.from(grads[p.name]!.dataSync()));
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return { g, loss };
};

describe('SAR helpers', () => {
  it('the SAM perturbation has norm rho and the gradient direction; zero gradient gives zero', () => {
    const g = [tf.tensor1d([3, -4]), tf.tensor2d([[1, 2], [0, -2]])];
    const e = samPerturbation(g, 0.05);
    const norm = Math.sqrt(e.reduce((s, t) => s + tf.tidy(() => tf.sum(tf.square(t)).dataSync()[0]!), 0));
    expect(norm).toBeCloseTo(0.05, 6);
    const gNorm = Math.sqrt(9 + 16 + 1 + 4 + 4);
    expect(Array.from(e[1]!.dataSync())).toEqual([1, 2, 0, -2].map((v) => expect.closeTo((0.05 * v) / gNorm, 7)));
    const zero = samPerturbation([tf.zeros([3])], 0.05);
    expect(Array.from(zero[0]!.dataSync())).toEqual([0, 0, 0]);
    tf.dispose([...g, ...e, ...zero]);
  });

  it('the loss average starts empty, takes the first value, then 0.9/0.1', () => {
    expect(updateLossEma(null, 0.7)).toBe(0.7);
    expect(updateLossEma(0.7, 0.2)).toBeCloseTo(0.65, 12);
  });

  it("learning rate: the authors' rule below batch 32", () => {
    expect(sarLearningRate(0.00025, 64)).toBe(0.00025);
    expect(sarLearningRate(0.00025, 16)).toBeCloseTo(0.000125, 12);
  });
});

describe('SAR', () => {
  it('one step = SGD with the gradient at theta + rho g/|g| over samples reliable at both points; prediction from before', async () => {
    const c = await context();
    const lr = 1;
    const rho = 0.5;
    const sar = new SarMethod(sarOptions.parse({ lr, rho, resetConstant: 0 }));
    await sar.init(c);
    const before = weightValues(c.network);
    const ref = await sourceNetwork();
    const params = ref.normAffineVariables();
    const x = mixedBatch(0, 21);

    // The test's own SAM step on the reference network.
    const h1 = entropies(ref, x);
    const reliable = h1.map((v) => v < E0);
    const n1 = reliable.filter(Boolean).length;
    expect(n1).toBeGreaterThan(1);
    expect(n1).toBeLessThan(16);
    const expectedProbs = tf.tidy(() => tf.softmax(ref.logits(x)));
    const { g: g1 } = maskedGrad(ref, x, reliable);
    const norm = Math.sqrt(g1.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
    const theta = params.map((p) => Float32Array.from(p.dataSync()));
    params.forEach((p, i) => p.assign(tf.tensor(theta[i]!.map((v, j) => v + (rho * g1[i]![j]!) / norm), p.shape)));
    const h2 = entropies(ref, x);
    const both = h2.map((v, i) => reliable[i]! && v < E0);
    const { g: g2, loss } = maskedGrad(ref, x, both);
    // SAM matters here: the gradient at the perturbed point is not the plain one.
    const gap = Math.max(...g2.flatMap((g, i) => Array.from(g, (v, j) => Math.abs(v - g1[i]![j]!))));
    expect(gap).toBeGreaterThan(1e-2);

    const probs = await sar.predict(x);
    expect(maxAbsDiff(probs, expectedProbs)).toBeLessThan(1e-5);
    await sar.adapt(x);
    sar.trainedVariables.forEach((v, i) => {
      const now = v.dataSync();
      let worst = 0;
      for (let j = 0; j < now.length; j++) worst = Math.max(worst, Math.abs(now[j]! - (theta[i]![j]! - lr * g2[i]![j]!)));
      expect(worst, v.name).toBeLessThan(2e-4);
    });
    // Only norm gamma/beta moved, and all of them.
    const changed = changedWeights(c.network, before);
    expect(changed.length).toBe(params.length);
    expect(changed.every((k) => /norm\d?\/(gamma|beta)$/.test(k))).toBe(true);
    expect(sar.lossEma).toBeCloseTo(loss, 5);
    expect(sar.counts).toMatchObject({ batches: 1, reliable: n1, secondStep: both.filter(Boolean).length, recoveries: 0 });
    tf.dispose([x, probs, expectedProbs]);
    sar.dispose();
    c.network.dispose();
    ref.dispose();
  });

  it('recovers the source weights when the loss average is below the reset constant, keeping the average', async () => {
    const c = await context();
    const sar = createMethod('sar', { lr: 0.05, resetConstant: 100 }) as SarMethod;
    await sar.init(c);
    const source = weightValues(c.network);
    const x = mixedBatch(50, 22);
    (await sar.predict(x)).dispose();
    await sar.adapt(x);
    expect(sar.counts.recoveries).toBe(1);
    expect(changedWeights(c.network, source)).toEqual([]);
    expect(sar.lossEma).not.toBeNull();
    // Same run with a constant never reached: the weights move.
    const c2 = await context();
    const sar2 = createMethod('sar', { lr: 0.05, resetConstant: 0 }) as SarMethod;
    await sar2.init(c2);
    (await sar2.predict(x)).dispose();
    await sar2.adapt(x);
    expect(sar2.counts.recoveries).toBe(0);
    expect(changedWeights(c2.network, source).length).toBeGreaterThan(0);
    expect(sar2.lossEma).toBeCloseTo(sar.lossEma!, 6);
    tf.dispose(x);
    sar.dispose();
    sar2.dispose();
    c.network.dispose();
    c2.network.dispose();
  });

  it('with no reliable sample the average stays empty (no recovery) and a fresh step changes nothing', async () => {
    const c = await context();
    const sar = createMethod('sar', { eMargin: 0.05, resetConstant: 100 }) as SarMethod;
    await sar.init(c);
    const source = weightValues(c.network);
    const x = noiseBatch(4);
    const ref = await sourceNetwork();
    expect(Math.min(...entropies(ref, x))).toBeGreaterThan(0.05);
    (await sar.predict(x)).dispose();
    await sar.adapt(x);
    expect(sar.lossEma).toBeNull();
    expect(sar.counts).toMatchObject({ batches: 1, reliable: 0, secondStep: 0, recoveries: 0 });
    expect(changedWeights(c.network, source)).toEqual([]);
    tf.dispose(x);
    sar.dispose();
    c.network.dispose();
    ref.dispose();
  });

  it('freezeLastStage leaves the last stage norm layers untouched', async () => {
    const c = await context();
    const sar = createMethod('sar', { lr: 0.05, freezeLastStage: true, resetConstant: 0 }) as SarMethod;
    await sar.init(c);
    expect(sar.trainedVariables.length).toBe(12); // stem, s1 (2), s2 (3) norms: gamma + beta each
    const before = weightValues(c.network);
    const x = mixedBatch(70, 23);
    (await sar.predict(x)).dispose();
    await sar.adapt(x);
    const changed = changedWeights(c.network, before);
    expect(changed.length).toBe(12);
    expect(changed.some((k) => k.startsWith('s3_'))).toBe(false);
    tf.dispose(x);
    sar.dispose();
    c.network.dispose();
  });

  it('learning rate per dataset with the batch rule; reset; no tensor leaked by init, predict, adapt, recovery, reset, dispose', async () => {
    const c = await context();
    const start = tf.memory().numTensors;
    for (const resetConstant of [0, 100]) {
      const sar = createMethod('sar', { resetConstant }) as SarMethod;
      await sar.init(c);
      const source = weightValues(c.network);
      for (let b = 0; b < 3; b++) {
        const x = mixedBatch(100 + 16 * b, b);
        (await sar.predict(x)).dispose();
        await sar.adapt(x);
        x.dispose();
      }
      expect(sar.learningRate).toBeCloseTo((0.005 / 64) * 16 * 2, 12);
      expect(sar.counts.recoveries).toBe(resetConstant === 0 ? 0 : 3);
      // Source copy, plus the momentum buffers unless a recovery just replaced the optimizer.
      const momentum = sar.trainedVariables.reduce((s, v) => s + v.size * 4, 0);
      expect(sar.stateBytes() - c.network.weightBytes()).toBe(resetConstant === 0 ? momentum + 4 + 4 : 0);
      expect(changedWeights(c.network, source).length > 0).toBe(resetConstant === 0);
      await sar.reset();
      expect(sar.lossEma).toBeNull();
      expect(changedWeights(c.network, source)).toEqual([]);
      const x = mixedBatch(200, 9);
      (await sar.predict(x)).dispose(); // predict without adapt, then dispose: the pending gradients go too
      x.dispose();
      sar.dispose();
      expect(tf.memory().numTensors).toBe(start);
    }
    c.network.dispose();
  });
});
