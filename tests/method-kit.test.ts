/**
 * The method kit's own guarantees: per-dataset defaults, the label space of class-subset models,
 * held-out evaluation that changes nothing, the plain-object check, and the fidelity fixes
 * against the authors' code (each test fails on the behaviour before the fix).
 */
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LabelSpace } from '../src/eval/label-space.js';
import { openRun } from '../src/eval/run-setup.js';
import { runScenario } from '../src/eval/runner.js';
import { createMethod, registerMethod, resolveMethodOptions } from '../src/methods/index.js';
import { softCrossEntropy, symmetricCrossEntropy } from '../src/methods/teacher-student.js';
import { VidaAdapters } from '../src/models/adapters/vida.js';
import type { Network } from '../src/models/network.js';
import { parseScenario } from '../src/streams/scenario.js';
import { createOptimizer, disposeOptimizer } from '../src/training/optimizer.js';
import { Rng } from '../src/util/rng.js';
import { expectCttaError, methodContext, ROOT, useWasm } from './helpers.js';

beforeAll(useWasm);

const batch = (seed: number, n = 16) => tf.randomUniform([n, 28, 28, 1], 0, 1, 'float32', seed) as tf.Tensor4D;
/** Every weight and running statistic of a network, copied. */
const state = (net: Network) => new Map([...net.namedWeights()].map(([k, v]) => [k, Array.from(v.dataSync())]));

describe('per-dataset defaults (declared beside each method)', () => {
  it('takes the dataset row for options the user left unset, CIFAR-10 for a missing row, and the user value over both', () => {
    expect(resolveMethodOptions('cotta', {}, 'cifar10')).toMatchObject({ ap: 0.92, restore: 0.01, optimizer: 'adam', loss: 'soft', nesterov: false });
    expect(resolveMethodOptions('cotta', {}, 'cifar100')).toMatchObject({ ap: 0.72, restore: 0.01 });
    expect(resolveMethodOptions('cotta', {}, 'imagenet')).toMatchObject({ ap: 0.1, restore: 0.001, optimizer: 'sgd', lr: 0.01, nesterov: true, loss: 'symmetric' });
    expect(resolveMethodOptions('eata', {}, 'cifar10')).toMatchObject({ dMargin: 0.4, fisherAlpha: 1, lr: 0.005 });
    expect(resolveMethodOptions('eata', {}, 'cifar100')).toMatchObject({ dMargin: 0.1 });
    expect(resolveMethodOptions('eata', {}, 'imagenet')).toMatchObject({ dMargin: 0.05, fisherAlpha: 2000, lr: 0.00025 });
    expect(resolveMethodOptions('vida', {}, 'cifar100')).toMatchObject({ lr: 3e-4, adapterLr: 1e-6 });
    expect(resolveMethodOptions('vida', {}, 'imagenet')).toMatchObject({ loss: 'symmetric', threshold: 0.2, nesterov: true, adapterMomentum: 0.8, restore: 0 });
    expect(resolveMethodOptions('tent', {}, 'imagenet')).toMatchObject({ optimizer: 'sgd', lr: 2.5e-4 });
    expect(resolveMethodOptions('sar', {}, 'imagenet')).toMatchObject({ baseLr: 0.00025 });
    // Fashion-MNIST has no row of its own: CIFAR-10's.
    expect(resolveMethodOptions('cotta', {}, 'fashion-mnist')).toEqual(resolveMethodOptions('cotta', {}, 'cifar10'));
    expect(resolveMethodOptions('cotta', { ap: 0.5 }, 'cifar100')).toMatchObject({ ap: 0.5 });
  });
});

describe('fidelity fixes', () => {
  it('the symmetric loss of the ImageNet code is 0.5 CE(t->s) + 0.5 CE(s->t), and differs from the soft CE', () => {
    const s = tf.tensor2d([[1, 2, 0.5], [0, -1, 3]]);
    const t = tf.tensor2d([[0.2, 1.5, 0], [2, 0, 1]]);
    const ce = (a: tf.Tensor2D, b: tf.Tensor2D) => tf.tidy(() => tf.neg(tf.sum(tf.mul(tf.softmax(b), tf.logSoftmax(a)), 1)));
    const manual = tf.tidy(() => tf.mean(tf.add(tf.mul(ce(s as tf.Tensor2D, t as tf.Tensor2D), 0.5), tf.mul(ce(t as tf.Tensor2D, s as tf.Tensor2D), 0.5))));
    const sym = symmetricCrossEntropy(s as tf.Tensor2D, t as tf.Tensor2D);
    const soft = softCrossEntropy(s as tf.Tensor2D, t as tf.Tensor2D);
    expect(sym.dataSync()[0]).toBeCloseTo(manual.dataSync()[0]!, 6);
    expect(Math.abs(sym.dataSync()[0]! - soft.dataSync()[0]!)).toBeGreaterThan(0.01);
    tf.dispose([s, t, manual, sym, soft]);
  });

  it('SGD with Nesterov: the first step is lr (1 + m) g, plain momentum lr g; TENT passes the option through', async () => {
    const v = tf.variable(tf.tensor1d([1, -2]));
    const g = { [v.name]: tf.tensor1d([0.5, 0.25]) };
    for (const nesterov of [false, true]) {
      v.assign(tf.tensor1d([1, -2]));
      const opt = createOptimizer('sgd', { lr: 0.1, momentum: 0.9, nesterov });
      opt.applyGradients(g);
      const scale = 0.1 * (nesterov ? 1.9 : 1);
      const [a, b] = Array.from(v.dataSync());
      expect(a).toBeCloseTo(1 - scale * 0.5, 6);
      expect(b).toBeCloseTo(-2 - scale * 0.25, 6);
      disposeOptimizer(opt);
    }
    tf.dispose([v, ...Object.values(g)]);

    // Through TENT: the first Nesterov step moves every parameter 1.9x as far as plain momentum.
    const deltas: number[][] = [];
    for (const nesterov of [false, true]) {
      const c = await methodContext();
      const before = c.network.normAffineVariables().map((p) => Array.from(p.dataSync()));
      const tent = createMethod('tent', { optimizer: 'sgd', lr: 0.01, momentum: 0.9, nesterov });
      await tent.init(c);
      const x = batch(5);
      (await tent.predict(x)).dispose();
      await tent.adapt(x);
      deltas.push(c.network.normAffineVariables().flatMap((p, i) => Array.from(p.dataSync()).map((a, j) => a - before[i]![j]!)));
      x.dispose();
      tent.dispose();
      c.network.dispose();
    }
    const big = deltas[0]!.map((d, i) => [d, deltas[1]![i]!]).filter(([d]) => Math.abs(d!) > 1e-4);
    expect(big.length).toBeGreaterThan(10);
    for (const [plain, nest] of big) expect(nest! / plain!).toBeCloseTo(1.9, 2);
  });

  it("fresh ViDA down projections start with std 1/r^2 (the authors' injection code), 1/r as an option", async () => {
    for (const initStd of ['1/r^2', '1/r'] as const) {
      const c = await methodContext();
      const adapters = VidaAdapters.create(c.network, { initStd }, Rng.derive(0, 'init'));
      for (const [name, v] of adapters.namedVariables()) {
        if (!name.endsWith('high_down')) continue;
        const r = v.shape[v.rank - 1]!;
        const values = v.dataSync();
        const std = Math.sqrt(values.reduce((s, a) => s + a * a, 0) / values.length);
        const expected = initStd === '1/r^2' ? 1 / r ** 2 : 1 / r;
        expect(Math.abs(std - expected) / expected).toBeLessThan(0.1);
      }
      adapters.dispose();
      c.network.dispose();
    }
  });

  it("EATA without clean source images says how to name them or run without the Fisher term", async () => {
    const c = await methodContext({ cleanImages: undefined });
    await expectCttaError(() => createMethod('eata').init(c), /"clean": \{"dataset".*fisherAlpha=0/);
    c.network.dispose();
  });
});

describe('evaluate changes no state', () => {
  it('BN with an EMA, TENT and CoTTA: weights and running statistics stay bit-identical (predict, for contrast, moves them)', async () => {
    for (const [name, options] of [['bn', { ema: 0.1 }], ['tent', {}], ['cotta', { views: 2 }]] as const) {
      const c = await methodContext();
      const method = createMethod(name, options);
      await method.init(c);
      const x = batch(1);
      (await method.predict(x)).dispose();
      await method.adapt(x);
      const before = state(c.network);
      const bytes = method.stateBytes();
      const held = batch(2, 24);
      for (let i = 0; i < 3; i++) (await method.evaluate(held)).dispose();
      expect(state(c.network)).toEqual(before);
      expect(method.stateBytes()).toBe(bytes);
      // The same calls through predict+adapt do change the state: the check above can fail.
      (await method.predict(held)).dispose();
      await method.adapt(held);
      expect(state(c.network)).not.toEqual(before);
      tf.dispose([x, held]);
      method.dispose();
      c.network.dispose();
    }
  });
});

describe("the dataset's label space", () => {
  it('spreads a class-subset head over the K dataset classes with 0 for the others; checks the manifest', () => {
    const space = new LabelSpace([0, 2, 4], 5);
    const p = space.toDataset(tf.tensor2d([[0.2, 0.5, 0.3]]));
    // Exact: each value is the head's own float32, moved to its class's column.
    expect(Array.from(p.dataSync())).toEqual([0.2, 0, 0.5, 0, 0.3].map(Math.fround));
    expect(p.shape).toEqual([1, 5]);
    p.dispose();
    space.dispose();
    expect(() => LabelSpace.check([0, 1], 3, 10, 'model m')).toThrow(/2 classes but the model's head has 3 outputs/);
    expect(() => LabelSpace.check([0, 12], 2, 10, 'model m')).toThrow(/head class 12 is not a class/);
    expect(() => LabelSpace.check([1, 1], 2, 10, 'model m')).toThrow(/twice/);
  });

  it('a model trained on classes 0-4 answers over all 10 classes, in the stream and in held-out evaluation', async () => {
    const scenario = parseScenario(
      {
        dataset: 'fashion-mnist',
        model: join(ROOT, 'models/fmnist-resnet8-base5'),
        modelClasses: 'subset',
        domains: [{ corruption: 'none' }],
        ordering: { name: 'class_incremental', params: { nTasks: 5, samplesPerTask: 40 } },
        heldOut: { fraction: 0.1 },
        batchSize: 20,
      },
      'ci5.json',
    );
    const run = await openRun({ scenario, method: 'tent', seed: 0 });
    const x = batch(3, 8);
    const probs = run.labels.toDataset(await run.method.predict(x));
    expect(probs.shape).toEqual([8, 10]);
    const rows = await probs.array();
    for (const row of rows) {
      expect(row.slice(5).every((v) => v === 0)).toBe(true);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    tf.dispose([x, probs]);
    run.dispose();

    const r = await runScenario({ scenario, method: 'source', seed: 0 });
    expect(r.predictions.every((c) => c >= 0 && c < 5)).toBe(true);
    const A = r.summary.accuracyMatrix!;
    // Tasks of classes 5-9 cannot be predicted by a head of classes 0-4; earlier ones can.
    const order = (await import('../src/streams/stream.js')).openStream;
    const stream = await order(scenario, 0);
    stream.ordering.tasks.forEach((t, j) => {
      const classes = new Set(Array.from(t.evalIndices!, (i) => stream.source.labels[i]!));
      if ([...classes].every((k) => k >= 5)) expect(A[4]![j]).toBe(0);
      if ([...classes].every((k) => k < 5)) expect(A[4]![j]).toBeGreaterThan(0.5);
    });
  });
});

describe('methods written as plain objects', () => {
  it('createMethod names what a plug-in method lacks', async () => {
    registerMethod({
      name: 'half-done',
      description: 'predict only',
      usesLabels: false,
      options: { parse: () => ({}) },
      create: () => ({ name: 'half-done', usesLabels: false, options: {}, async predict() { return tf.zeros([1, 10]) as tf.Tensor2D; } }) as never,
    });
    await expectCttaError(() => createMethod('half-done'), /lacks init\(\), adapt\(\), evaluate\(\), stateBytes\(\), reset\(\), dispose\(\), labelSpace.*FrozenMethod or GradientMethod/);
  });
});
