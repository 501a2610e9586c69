import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from '../src/eval/runner.js';
import { lame, lameAffinity } from '../src/methods/lame.js';
import { fmnistScenario, maxAbsDiff, useWasm } from './helpers.js';

beforeAll(useWasm);

const batch = (seed: number) =>
  tf.tidy(() => ({
    probs: tf.softmax(tf.mul(tf.randomNormal([24, 6], 0, 1, 'float32', seed), 2)) as tf.Tensor2D,
    feats: tf.randomNormal([24, 16], 0, 1, 'float32', seed + 1) as tf.Tensor2D,
  }));

describe('LAME', () => {
  it('returns a fixed point of its update, for every affinity', () => {
    for (const affinity of ['knn', 'rbf', 'linear'] as const) {
      const { probs, feats } = batch(1);
      const { Z } = lame(probs, feats, { affinity, k: 3 });
      const unit = tf.tidy(() => tf.div(feats, tf.norm(feats, 2, 1, true)) as tf.Tensor2D);
      const w = lameAffinity(unit, { affinity, k: 3, symmetric: false });
      const again = tf.tidy(() => tf.softmax(tf.add(tf.log(tf.add(probs, 1e-10)), tf.matMul(w, Z))));
      expect(maxAbsDiff(again, Z), affinity).toBeLessThan(1e-4);
      tf.dispose([probs, feats, Z, unit, w, again]);
    }
  });

  it('never increases the energy (symmetric PSD affinities: rbf, linear)', () => {
    for (const affinity of ['rbf', 'linear'] as const) {
      const { probs, feats } = batch(2);
      const { Z, energies } = lame(probs, feats, { affinity, k: 5, symmetric: true });
      expect(energies.length).toBeGreaterThan(1);
      for (let i = 1; i < energies.length; i++) expect(energies[i]!, `${affinity} iteration ${i}`).toBeLessThanOrEqual(energies[i - 1]! + 1e-6 * Math.abs(energies[i - 1]!));
      tf.dispose([probs, feats, Z]);
    }
  });

  it('kNN with k = 0, or lambda = 0, returns p', () => {
    const { probs, feats } = batch(3);
    const a = lame(probs, feats, { affinity: 'knn', k: 0 });
    const b = lame(probs, feats, { affinity: 'rbf', lambda: 0 });
    expect(maxAbsDiff(a.Z, probs)).toBeLessThan(1e-6);
    expect(maxAbsDiff(b.Z, probs)).toBeLessThan(1e-6);
    tf.dispose([probs, feats, a.Z, b.Z]);
  });

  it('kNN affinity: k ones per row, none on the diagonal', () => {
    const { probs, feats } = batch(4);
    const w = lameAffinity(tf.tidy(() => tf.div(feats, tf.norm(feats, 2, 1, true)) as tf.Tensor2D), { affinity: 'knn', k: 3, symmetric: false });
    const rows = w.sum(1).dataSync();
    expect(Array.from(rows).every((r) => r === 3)).toBe(true);
    expect(tf.tidy(() => tf.sum(tf.mul(w, tf.eye(24))).dataSync()[0])).toBe(0);
    tf.dispose([probs, feats, w]);
  });

  it('beats Source on a class-sorted stream, without leaking tensors', async () => {
    const scenario = await fmnistScenario({ name: 'dirichlet', params: { delta: 0, samplesPerDomain: 512 } });
    const before = tf.memory().numTensors;
    const source = await runScenario({ scenario, method: 'source', seed: 0 });
    const lameRun = await runScenario({ scenario, method: 'lame', seed: 0, methodOptions: { affinity: 'knn', k: 1 } });
    expect(tf.memory().numTensors).toBe(before);
    expect(lameRun.summary.meanError).toBeLessThan(source.summary.meanError);
  });
});
