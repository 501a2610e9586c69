/**
 * RoTTA (src/methods/rotta.ts): the CSTU memory bank's rule on hand-built offers, the
 * time-aware weight, robust BN against a hand computation (values, stored statistics, and the
 * gradient through the batch moments), what an update changes in student and teacher and when,
 * the method contract, and no tensor leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import '../src/methods/rotta.js';
import { createMethod } from '../src/methods/registry.js';
import { CategoryBalancedMemory, timelinessWeight } from '../src/methods/rotta/memory-bank.js';
import { robustBatchNorm, withRobustNorm } from '../src/methods/rotta/robust-bn.js';
import { cottaAugment } from '../src/augment/cotta.js';
import { NormLayer } from '../src/models/norm.js';
import { Rng } from '../src/util/rng.js';
import { changedWeights, maxAbsDiff, methodContext, mixedBatch, sourceNetwork, useFashionMnist, useWasm, weightValues } from './helpers.js';

beforeAll(async () => {
  await useWasm();
  await useFashionMnist();
});

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

describe('RoTTA memory bank (CSTU)', () => {
  it('never holds more than its capacity, nor more than ceil(quota) of a class', () => {
    const bank = new CategoryBalancedMemory<number>(64, 10);
    let state = 12345;
    const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let live = 0; // payloads handed in minus payloads dropped or evicted
    for (let i = 0; i < 600; i++) {
      // Skewed classes so that some class keeps hitting its quota.
      const cls = next() < 0.5 ? 3 : Math.floor(next() * 10);
      const offer = bank.add(i, cls, next() * Math.log(10));
      live += offer.stored ? 1 : 0;
      if (offer.evicted !== undefined) live--;
      expect(bank.size).toBeLessThanOrEqual(64);
      expect(bank.size).toBe(live);
      for (const n of bank.occupancy()) expect(n).toBeLessThanOrEqual(Math.ceil(64 / 10));
    }
    expect(bank.size).toBe(64);
  });

  it('ages every stored item by one per offer, stored or not', () => {
    const bank = new CategoryBalancedMemory<string>(4, 2);
    bank.add('a', 0, 0);
    expect(bank.items().map((i) => i.age)).toEqual([1]);
    bank.add('b', 1, 0);
    bank.add('c', 0, 0);
    expect(bank.items().map((i) => [i.data, i.age])).toEqual([['a', 3], ['c', 1], ['b', 2]]);
    // Class 0 is at its quota (2) and the new item is more uncertain than any: dropped, ages still move.
    expect(bank.add('d', 0, 5)).toEqual({ stored: false });
    expect(bank.items().map((i) => [i.data, i.age])).toEqual([['a', 4], ['c', 2], ['b', 3]]);
  });

  it('a class at its quota replaces its own most uncertain item, not the oldest, and only if that scores above the new one', () => {
    const bank = new CategoryBalancedMemory<string>(6, 2); // quota 3
    bank.add('a', 0, 0.1);
    bank.add('b', 0, 0.6);
    bank.add('c', 0, 0.2);
    bank.add('x', 1, 2.0); // a very uncertain item of the other class: not a candidate
    // Scores now (ages 4, 3, 2): a = s(4/6)+0.1/ln2 = 0.805, b = s(3/6)+0.6/ln2 = 1.488, c = s(2/6)+0.2/ln2 = 0.871.
    expect(bank.score(4, 0.1)).toBeCloseTo(sigmoid(4 / 6) + 0.1 / Math.LN2, 12);
    // New class-0 item: 0.5 + 0.3/ln2 = 0.933 < b's -> b goes although a is older; the bank is not full.
    expect(bank.add('d', 0, 0.3)).toEqual({ stored: true, evicted: 'b' });
    expect(bank.items().map((i) => i.data)).toEqual(['a', 'c', 'd', 'x']);
    // New class-0 item with 0.5 + 0.4/ln2 = 1.077 > every class-0 score (d: s(1/6)+0.433 = 0.975): dropped.
    expect(bank.add('e', 0, 0.4)).toEqual({ stored: false });
    expect(bank.items().map((i) => i.data)).toEqual(['a', 'c', 'd', 'x']);
  });

  it('a full bank makes room in the majority class first, there the oldest of equally certain items', () => {
    const bank = new CategoryBalancedMemory<string>(5, 2); // quota 2.5: class 0 may hold 3
    bank.add('a0', 0, 0);
    bank.add('a1', 0, 0);
    bank.add('a2', 0, 0);
    bank.add('b0', 1, Math.LN2); // maximally uncertain, but class 1 is the minority
    bank.add('b1', 1, Math.LN2);
    expect(bank.occupancy()).toEqual([3, 2]);
    // Class 1 is under its quota and the bank is full -> the candidates are class 0's; a0 is the oldest.
    expect(bank.add('b2', 1, 0)).toEqual({ stored: true, evicted: 'a0' });
    expect(bank.occupancy()).toEqual([2, 3]);
    // Now class 0 is under quota and class 1 holds the most: its items compete (b2, certain and
    // young, survives; the most uncertain-and-oldest, b0, goes).
    expect(bank.add('a3', 0, 0)).toEqual({ stored: true, evicted: 'b0' });
    expect(bank.items().map((i) => i.data)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
  });

  it('the time-aware weight is exp(-a)/(1+exp(-a)) of age/capacity', () => {
    expect(timelinessWeight(0)).toBe(0.5);
    expect(timelinessWeight(1)).toBeCloseTo(Math.exp(-1) / (1 + Math.exp(-1)), 15);
    expect(timelinessWeight(1)).toBeCloseTo(0.2689414213699951, 15);
    expect(timelinessWeight(32 / 64)).toBeCloseTo(0.3775406687981454, 15);
    expect(timelinessWeight(2)).toBeLessThan(timelinessWeight(1));
  });
});

describe('RoTTA robust BN', () => {
  // One BN layer, 3 channels, on a [2, 2, 2, 3] batch; everything recomputed in float64 by hand.
  const C = 3;
  const eps = 1e-3;
  const alpha = 0.05;
  const gamma = [1.5, 0.5, -1];
  const beta = [0.1, -0.2, 0.3];
  const mu0 = [0.2, -1, 3];
  const var0 = [1, 4, 0.25];
  const xs = Array.from({ length: 24 }, (_, i) => Math.sin(1.7 * i + 0.3) * (1 + (i % 3)) + (i % 3));
  const r = Array.from({ length: 24 }, (_, i) => Math.cos(0.9 * i));

  function layer(): NormLayer {
    return new NormLayer('bn', 'batch', C, eps, tf.variable(tf.tensor1d(gamma)), tf.variable(tf.tensor1d(beta)), tf.variable(tf.tensor1d(mu0)), tf.variable(tf.tensor1d(var0)));
  }
  function dispose(n: NormLayer): void {
    tf.dispose([n.gamma!, n.beta!, n.movingMean!, n.movingVariance!]);
  }

  /** Hand robust BN: blended statistics, output, and sum(output * r). */
  function byHand(x: number[]) {
    const mean: number[] = [];
    const variance: number[] = [];
    for (let c = 0; c < C; c++) {
      const v = x.filter((_, i) => i % C === c);
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      const s2 = v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length; // biased
      mean.push((1 - alpha) * mu0[c]! + alpha * m);
      variance.push((1 - alpha) * var0[c]! + alpha * s2);
    }
    const y = x.map((v, i) => ((v - mean[i % C]!) / Math.sqrt(variance[i % C]! + eps)) * gamma[i % C]! + beta[i % C]!);
    return { mean, variance, y, objective: y.reduce((a, v, i) => a + v * r[i]!, 0) };
  }

  it('normalises with the global statistics after folding the batch in with alpha, and stores them', () => {
    const n = layer();
    const x = tf.tensor4d(xs, [2, 2, 2, C]);
    const y = robustBatchNorm(n, x, alpha);
    const h = byHand(xs);
    const got = y.dataSync();
    h.y.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 4));
    // Stored = the blended statistics (biased batch variance, no n/(n-1) correction).
    Array.from(n.movingMean!.dataSync()).forEach((v, c) => expect(v).toBeCloseTo(h.mean[c]!, 5));
    Array.from(n.movingVariance!.dataSync()).forEach((v, c) => expect(v).toBeCloseTo(h.variance[c]!, 5));
    // Not plain BN on the batch: with alpha 0.05 the output is far from batch-normalised.
    const plain = tf.tidy(() => {
      const m = tf.moments(x, [0, 1, 2]);
      return x.sub(m.mean).div(m.variance.add(eps).sqrt()).mul(gamma).add(beta);
    });
    expect(maxAbsDiff(y, plain)).toBeGreaterThan(0.1);
    // A second batch starts from the updated statistics (they are global, carried over).
    const y2 = robustBatchNorm(n, x, alpha);
    expect(maxAbsDiff(y, y2)).toBeGreaterThan(1e-4);
    tf.dispose([x, y, y2, plain]);
    dispose(n);
  });

  it('the gradient reaches the batch moments (not detached, as in the code); frozen writes nothing', () => {
    const n = layer();
    n.frozen = true; // same forward, statistics left alone, so the finite differences see mu0/var0
    const x = tf.tensor4d(xs, [2, 2, 2, C]);
    const rt = tf.tensor4d(r, [2, 2, 2, C]);
    const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(robustBatchNorm(n, xx as tf.Tensor4D, alpha), rt)))(x);
    const got = g.dataSync();
    const h = 1e-5;
    let detachedDiffers = 0;
    for (let j = 0; j < xs.length; j++) {
      const up = xs.slice();
      const down = xs.slice();
      up[j]! += h;
      down[j]! -= h;
      const numeric = (byHand(up).objective - byHand(down).objective) / (2 * h);
      expect(got[j]).toBeCloseTo(numeric, 3);
      // With detached statistics the gradient would be r * gamma / sqrt(var + eps).
      const detached = (r[j]! * gamma[j % C]!) / Math.sqrt(byHand(xs).variance[j % C]! + eps);
      if (Math.abs(numeric - detached) > 1e-3) detachedDiffers++;
    }
    expect(detachedDiffers).toBeGreaterThan(0);
    expect(Array.from(n.movingMean!.dataSync())).toEqual(Array.from(Float32Array.from(mu0)));
    expect(Array.from(n.movingVariance!.dataSync())).toEqual(Array.from(Float32Array.from(var0)));
    tf.dispose([x, rt, g]);
    dispose(n);
  });
});

describe('RoTTA', () => {
  type Internals = { teacher: { namedWeights(): Map<string, tf.Variable> } };
  const isBn = (k: string) => /norm\d*\/(gamma|beta|moving_mean|moving_variance)$/.test(k);
  const isAffine = (k: string) => /norm\d*\/(gamma|beta)$/.test(k);

  it('predicts with the teacher on stored statistics; updates every updateFrequency images, not before', async () => {
    const c = await methodContext();
    const source = weightValues(c.network);
    const reference = await sourceNetwork('running');
    const m = createMethod('rotta'); // updateFrequency 64 = 4 batches of 16
    await m.init(c);
    const teacher = (m as unknown as Internals).teacher;
    for (let b = 0; b < 4; b++) {
      const x = mixedBatch(16 * b, b);
      const p = await m.predict(x);
      const expected = tf.tidy(() => tf.softmax(reference.logits(x)));
      // Until the first update the teacher is the source with its running statistics.
      expect(maxAbsDiff(p, expected)).toBeLessThan(1e-6);
      await m.adapt(x);
      expect(m.diagnostics!()!.updates).toBe(b === 3 ? 1 : 0);
      expect(m.diagnostics!()!.memory).toBeLessThanOrEqual(16 * (b + 1));
      if (b < 3) {
        // The incoming batch touches nothing: no weight and no statistic moved in either network.
        expect(changedWeights(c.network, source)).toEqual([]);
        expect(changedWeights(teacher.namedWeights(), source)).toEqual([]);
      }
      tf.dispose([x, p, expected]);
    }
    expect(changedWeights(c.network, source).length).toBeGreaterThan(0);
    expect(Number.isFinite(m.diagnostics!()!.loss)).toBe(true);
    m.dispose();
    c.network.dispose();
    reference.dispose();
  });

  it('an update trains only BN affine parameters; the teacher follows by nu; both move their own BN statistics', async () => {
    const c = await methodContext();
    const nu = 0.3;
    const m = createMethod('rotta', { updateFrequency: 16, nu });
    await m.init(c);
    const teacher = (m as unknown as Internals).teacher;
    const source = weightValues(c.network);
    const x = mixedBatch(100, 7);
    (await m.predict(x)).dispose();
    await m.adapt(x);
    const student = weightValues(c.network);
    const taught = weightValues(teacher.namedWeights());
    const studentChanged = changedWeights(c.network, source);
    expect(studentChanged.every(isBn)).toBe(true);
    expect(studentChanged.some((k) => k.endsWith('/gamma'))).toBe(true);
    expect(studentChanged.some((k) => k.endsWith('/moving_mean'))).toBe(true); // robust BN moved the student's statistics
    const teacherChanged = changedWeights(teacher.namedWeights(), source);
    expect(teacherChanged.every(isBn)).toBe(true);
    expect(teacherChanged.some((k) => k.endsWith('/moving_variance'))).toBe(true); // its own, from the clean bank
    for (const [name, t] of taught) {
      if (!isAffine(name)) continue;
      const s0 = source.get(name)!;
      const s1 = student.get(name)!;
      // The teacher started at the source: t = (1 - nu) * source + nu * student.
      t.forEach((v, i) => expect(Math.abs(v - ((1 - nu) * s0[i]! + nu * s1[i]!))).toBeLessThan(1e-6));
    }
    // Statistics are not averaged: the teacher's come from the clean bank, the student's from the augmented one.
    const stat = 'stem_norm/moving_mean';
    expect(Array.from(taught.get(stat)!)).not.toEqual(Array.from(student.get(stat)!));
    x.dispose();
    m.dispose();
    c.network.dispose();
  });

  it('the update loss is the age-weighted CE of the student on the augmented bank against the teacher on the clean bank', async () => {
    const c = await methodContext();
    const m = createMethod('rotta', { updateFrequency: 16 });
    await m.init(c);
    const x = mixedBatch(200, 3);
    (await m.predict(x)).dispose();
    await m.adapt(x);
    const reported = m.diagnostics!()!.loss!;
    // The bank as the update saw it (nothing was offered after the update).
    const items = (m as unknown as { bank: CategoryBalancedMemory<tf.Tensor3D> }).bank.items();
    const [teacher, student] = [await sourceNetwork('running'), await sourceNetwork('running')];
    const expected = tf.tidy(() => {
      const batch = tf.stack(items.map((i) => i.data)) as tf.Tensor4D;
      const w = tf.tensor1d(items.map((i) => Math.exp(-i.age / 64) / (1 + Math.exp(-i.age / 64))));
      // The method's only draws from the context's rng are this augmentation's.
      const strong = cottaAugment(batch, Rng.derive(0, 'test'), { noiseStd: 0.005 });
      const t = withRobustNorm(teacher, 0.05, () => teacher.logits(batch));
      const s = withRobustNorm(student, 0.05, () => student.logits(strong));
      const ce = tf.neg(tf.sum(tf.mul(tf.softmax(t), tf.logSoftmax(s)), 1));
      return tf.mean(tf.mul(ce, w)).dataSync()[0]!;
    });
    expect(Math.abs(reported - expected)).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected)));
    // Every item was offered within this batch, so the ages (hence the weights) are 1..16.
    expect(items.every((i) => i.age >= 1 && i.age <= 16)).toBe(true);
    x.dispose();
    m.dispose();
    c.network.dispose();
    teacher.dispose();
    student.dispose();
  });

  // The method contract (leaks included) runs for rotta with every method in tests/contract/methods.test.ts.
});
