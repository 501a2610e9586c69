import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from '../src/eval/runner.js';
import { createMethod } from '../src/methods/index.js';
import { meanEntropy } from '../src/methods/tent.js';
import { loadModel } from '../src/models/checkpoint.js';
import { parseScenario } from '../src/streams/scenario.js';
import { Rng } from '../src/util/rng.js';
import { ROOT, useWasm } from './helpers.js';

beforeAll(useWasm);

const ctx = async () => {
  const { network } = await loadModel(join(ROOT, 'models/fmnist-resnet8'));
  return { network, rng: Rng.derive(0, 'test'), seed: 0, numClasses: 10, family: 'small' as const };
};

describe('TENT', () => {
  it('one step changes only BatchNorm gamma and beta', async () => {
    const c = await ctx();
    const before = new Map([...c.network.namedWeights()].map(([k, v]) => [k, Array.from(v.dataSync())]));
    const tent = createMethod('tent');
    await tent.init(c);
    const x = tf.randomUniform([16, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    (await tent.predict(x)).dispose();
    await tent.adapt(x);
    const changed = [...c.network.namedWeights()].filter(([k, v]) => Array.from(v.dataSync()).some((a, i) => a !== before.get(k)![i])).map(([k]) => k);
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
    const x = tf.randomUniform([8, 28, 28, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
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
    const x = tf.randomUniform([16, 28, 28, 1], 0, 1, 'float32', 9) as tf.Tensor4D;
    const p1 = await tent.predict(x);
    // Pre-update prediction = BN with batch statistics on the source weights.
    const { network: reference } = await loadModel(join(ROOT, 'models/fmnist-resnet8'));
    reference.setNormStatistics('batch');
    const expected = tf.tidy(() => tf.softmax(reference.logits(x)));
    expect(tf.tidy(() => tf.max(tf.abs(p1.sub(expected))).dataSync()[0]!)).toBeLessThan(1e-6);
    await tent.adapt(x);
    const p2 = await tent.predict(x);
    expect(tf.tidy(() => tf.max(tf.abs(p2.sub(expected))).dataSync()[0]!)).toBeGreaterThan(1e-4);
    await tent.reset();
    const p3 = await tent.predict(x);
    expect(tf.tidy(() => tf.max(tf.abs(p3.sub(expected))).dataSync()[0]!)).toBeLessThan(1e-6);
    tf.dispose([x, p1, p2, p3, expected]);
    tent.dispose();
    c.network.dispose();
    reference.dispose();
  });

  it('runs a stream without leaking tensors and beats Source there', async () => {
    const scenario = parseScenario({
      dataset: 'fashion-mnist',
      model: join(ROOT, 'models/fmnist-resnet8'),
      corruptions: ['gaussian_noise', 'fog'],
      ordering: { name: 'continual', params: { samplesPerDomain: 256 } },
      batchSize: 64,
    });
    const before = tf.memory().numTensors;
    const source = await runScenario({ scenario, method: 'source', seed: 0 });
    const tent = await runScenario({ scenario, method: 'tent', seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(tent.summary.leakedTensors).toBe(0);
    expect(tent.summary.meanError).toBeLessThan(source.summary.meanError);
  });
});
