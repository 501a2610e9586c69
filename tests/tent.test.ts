import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from '../src/eval/runner.js';
import { createMethod } from '../src/methods/index.js';
import { meanEntropy } from '../src/methods/tent.js';
import { changedWeights, fmnistScenario, maxAbsDiff, methodContext, noiseBatch, sourceNetwork, useWasm, weightValues } from './helpers.js';

beforeAll(useWasm);

const ctx = () => methodContext();

describe('TENT', () => {
  it('one step changes only BatchNorm gamma and beta', async () => {
    const c = await ctx();
    const before = weightValues(c.network);
    const tent = createMethod('tent');
    await tent.init(c);
    const x = noiseBatch(3);
    (await tent.predict(x)).dispose();
    await tent.adapt(x);
    const changed = changedWeights(c.network, before);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.every((k) => /norm\d?\/(gamma|beta)$/.test(k))).toBe(true);
    // Every gamma and beta moved (Adam's first step moves each parameter with a nonzero gradient).
    expect(changed.length).toBe(c.network.normAffineVariables().length);
    x.dispose();
    tent.dispose();
    c.network.dispose();
  });

  it('the entropy gradient matches finite differences', async () => {
    const c = await ctx();
    c.network.setNormStatistics('batch');
    const x = noiseBatch(5, 8);
    const gamma = c.network.norms[4]!.gamma!;
    const loss = () => tf.tidy(() => meanEntropy(c.network.logits(x)).dataSync()[0]!);
    const { grads } = tf.variableGrads(() => meanEntropy(c.network.logits(x)), [gamma]);
    const g = grads[gamma.name]!.dataSync();
    const values = gamma.dataSync().slice();
    const eps = 1e-2;
    for (const i of [0, 3, 7]) {
      const shifted = (d: number) => {
        const v = values.slice();
        v[i]! += d;
        gamma.assign(tf.tensor1d(v));
        return loss();
      };
      const numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
      gamma.assign(tf.tensor1d(values));
      expect(Math.abs(numeric - g[i]!)).toBeLessThan(2e-3 + 0.05 * Math.abs(g[i]!));
    }
    tf.dispose([x, ...Object.values(grads)]);
    c.network.dispose();
  });

  it('returns the prediction from before the update, and reset restores the source weights', async () => {
    const c = await ctx();
    const tent = createMethod('tent', { lr: 0.05 });
    await tent.init(c);
    const x = noiseBatch(9);
    const p1 = await tent.predict(x);
    // Pre-update prediction = BN with batch statistics on the source weights.
    const reference = await sourceNetwork('batch');
    const expected = tf.tidy(() => tf.softmax(reference.logits(x)));
    expect(maxAbsDiff(p1, expected)).toBeLessThan(1e-6);
    await tent.adapt(x);
    const p2 = await tent.predict(x);
    expect(maxAbsDiff(p2, expected)).toBeGreaterThan(1e-4);
    await tent.reset();
    const p3 = await tent.predict(x);
    expect(maxAbsDiff(p3, expected)).toBeLessThan(1e-6);
    tf.dispose([x, p1, p2, p3, expected]);
    tent.dispose();
    c.network.dispose();
    reference.dispose();
  });

  it('runs a stream without leaking tensors and beats Source there', async () => {
    const scenario = await fmnistScenario();
    const before = tf.memory().numTensors;
    const source = await runScenario({ scenario, method: 'source', seed: 0 });
    const tent = await runScenario({ scenario, method: 'tent', seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(tent.summary.leakedTensors).toBe(0);
    expect(tent.summary.meanError).toBeLessThan(source.summary.meanError);
  });
});
