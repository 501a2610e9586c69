import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { cottaAugment } from '../src/augment/cotta.js';
import { runScenario } from '../src/eval/runner.js';
import { createMethod } from '../src/methods/index.js';
import { Rng } from '../src/util/rng.js';
import { changedWeights, fmnistScenario, maxAbsDiff, methodContext, noiseBatch, sourceNetwork, useWasm, weightValues } from './helpers.js';

beforeAll(useWasm);

const ctx = () => methodContext();

describe('CoTTA', () => {
  it('the teacher is the EMA of the student after each step', async () => {
    const c = await ctx();
    const cotta = createMethod('cotta', { momentum: 0.9, restore: 0, ap: 0 });
    await cotta.init(c);
    const teacher = (cotta as unknown as { teacher: { namedWeights(): Map<string, tf.Variable> } }).teacher;
    const trainable = c.network.model.trainableWeights.map((w) => w.originalName);
    const x = noiseBatch(1);
    for (let step = 0; step < 2; step++) {
      const t0 = weightValues(teacher.namedWeights());
      (await cotta.predict(x)).dispose();
      await cotta.adapt(x);
      const s1 = weightValues(c.network);
      const t1 = weightValues(teacher.namedWeights());
      let moved = 0;
      for (const name of trainable) {
        const [a, b, s] = [t0.get(name)!, t1.get(name)!, s1.get(name)!];
        for (let i = 0; i < a.length; i += Math.max(1, Math.floor(a.length / 7))) {
          expect(Math.abs(b[i]! - (0.9 * a[i]! + 0.1 * s[i]!))).toBeLessThan(1e-6 + 1e-6 * Math.abs(b[i]!));
          if (b[i] !== a[i]) moved++;
        }
      }
      expect(moved).toBeGreaterThan(0);
    }
    x.dispose();
    cotta.dispose();
    c.network.dispose();
  });

  it('restore with probability 1 gives the source weights back; with 0, every kind of weight trains', async () => {
    for (const restore of [1, 0]) {
      const c = await ctx();
      const source = weightValues(c.network);
      const cotta = createMethod('cotta', { restore, ap: 0 });
      await cotta.init(c);
      const x = noiseBatch(2);
      (await cotta.predict(x)).dispose();
      await cotta.adapt(x);
      const trainable = new Set(c.network.model.trainableWeights.map((w) => w.originalName));
      const changed = changedWeights(c.network, source).filter((k) => trainable.has(k));
      if (restore === 1) expect(changed).toEqual([]);
      else {
        expect(changed.some((k) => k.endsWith('/kernel'))).toBe(true);
        expect(changed.some((k) => k.endsWith('/gamma'))).toBe(true);
      }
      x.dispose();
      cotta.dispose();
      c.network.dispose();
    }
  });

  it('predicts with the teacher: plain when the anchor is confident, view-averaged when not', async () => {
    const x = noiseBatch(3);
    const reference = await sourceNetwork('batch');
    // ap 0: the anchor is always confident enough -> softmax of the teacher (= source) logits.
    const c0 = await ctx();
    const plain = createMethod('cotta', { ap: 0 });
    await plain.init(c0);
    const p0 = await plain.predict(x);
    const expected0 = tf.tidy(() => tf.softmax(reference.logits(x)));
    expect(maxAbsDiff(p0, expected0)).toBeLessThan(1e-6);
    // ap 1: never confident -> mean teacher logits over views drawn from the method's rng.
    const c1 = await ctx();
    const averaged = createMethod('cotta', { ap: 1, views: 3 });
    await averaged.init(c1);
    const p1 = await averaged.predict(x);
    const rng = Rng.derive(0, 'test');
    const expected1 = tf.tidy(() => {
      const logits = [0, 1, 2].map(() => reference.logits(cottaAugment(x, rng)));
      return tf.softmax(tf.div(tf.addN(logits), 3));
    });
    expect(maxAbsDiff(p1, expected1)).toBeLessThan(1e-5);
    expect(maxAbsDiff(p1, expected0)).toBeGreaterThan(1e-3);
    tf.dispose([x, p0, p1, expected0, expected1]);
    for (const [m, c] of [[plain, c0], [averaged, c1]] as const) {
      m.dispose();
      c.network.dispose();
    }
    reference.dispose();
  });

  it('reset returns student and teacher to the source; a run leaks no tensors and beats Source', async () => {
    const scenario = await fmnistScenario();
    const before = tf.memory().numTensors;
    const source = await runScenario({ scenario, method: 'source', seed: 0 });
    const cotta = await runScenario({ scenario, method: 'cotta', methodOptions: { views: 4 }, seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(cotta.summary.leakedTensors).toBe(0);
    expect(cotta.summary.meanError).toBeLessThan(source.summary.meanError);

    const c = await ctx();
    const sourceWeights = weightValues(c.network);
    const m = createMethod('cotta', { ap: 0, restore: 0, momentum: 0.5 });
    await m.init(c);
    const x = noiseBatch(4);
    (await m.predict(x)).dispose();
    await m.adapt(x);
    await m.reset();
    const teacher = (m as unknown as { teacher: { namedWeights(): Map<string, tf.Variable> } }).teacher;
    for (const net of [c.network.namedWeights(), teacher.namedWeights()]) {
      for (const [k, v] of net) expect(Array.from(v.dataSync())).toEqual(Array.from(sourceWeights.get(k)!));
    }
    x.dispose();
    m.dispose();
    c.network.dispose();
  });
});
