import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from '../src/eval/runner.js';
import { createMethod } from '../src/methods/index.js';
import { homeostaticScales, viewUncertainty } from '../src/methods/vida.js';
import { VidaAdapters } from '../src/models/adapters/vida.js';
import type { LayerHook } from '../src/models/network.js';
import { loadModel, saveModel } from '../src/models/checkpoint.js';
import { loadDataset } from '../src/streams/datasets/index.js';
import { pretrain, PRETRAIN_DEFAULTS } from '../src/training/pretrain.js';
import { Rng } from '../src/util/rng.js';
import {
  changedWeights,
  expectCttaError,
  fmnistScenario,
  maxAbsDiff,
  methodContext,
  MODEL,
  noiseBatch,
  ROOT,
  sourceNetwork,
  useWasm,
  weightValues,
} from './helpers.js';

beforeAll(useWasm);

/** The run's context; `modelPath` is where the run set-up looks for the `-vida` companion. */
const ctx = (extra: { modelPath?: string } = {}) => methodContext({}, { companionsOf: extra.modelPath });

describe('ViDA adapters', () => {
  it('fresh adapters leave the output unchanged; trained ones add scale x branch', async () => {
    const start = tf.memory().numTensors;
    const network = await sourceNetwork('batch');
    const x = noiseBatch(1);
    const plain = network.logits(x);
    const adapters = VidaAdapters.create(network, {}, Rng.derive(1, 'a')).attach(network);
    expect(adapters.layerNames()).toEqual(['s1_b0_conv1', 's1_b0_conv2', 's2_b0_conv1', 's2_b0_conv2', 's3_b0_conv1', 's3_b0_conv2']);
    const init = network.logits(x);
    expect(maxAbsDiff(init, plain)).toBe(0);
    // Give every up projection weights: the output moves, linearly in each branch's scale.
    tf.tidy(() => {
      for (const [name, v] of adapters.namedVariables()) if (name.endsWith('_up')) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 2));
    });
    adapters.scales = { low: 0, high: 0 };
    const off = network.logits(x);
    expect(maxAbsDiff(off, plain)).toBeLessThan(1e-5);
    adapters.scales = { low: 1, high: 1 };
    const on = network.logits(x);
    expect(maxAbsDiff(on, plain)).toBeGreaterThan(1e-3);
    tf.dispose([x, plain, init, off, on]);
    network.dispose();
    expect(adapters.variables().length).toBe(0); // disposed with the network
    expect(tf.memory().numTensors).toBe(start);
  });

  it('the merged kernel is the branch form: same logits and same gradients for kernels, down and up', async () => {
    const start = tf.memory().numTensors;
    const network = await sourceNetwork('batch');
    const adapters = VidaAdapters.create(network, { layers: 'all' }, Rng.derive(4, 'a')).attach(network);
    tf.tidy(() => {
      for (const [name, v] of adapters.namedVariables()) if (name.endsWith('_up')) v.assign(tf.randomNormal(v.shape, 0, 0.05, 'float32', 5));
    });
    adapters.scales = { low: 1.3, high: 0.7 };
    const named = adapters.namedVariables();
    // The paper's form, written out: each branch its own down conv (the layer's stride and
    // padding) and 1x1 up conv, or two matrix products, added to the layer's output.
    const branchForm: LayerHook = ({ layer, input, output }) => {
      const down = (part: string) => named.get(`vida/${layer.name}/${part}_down`);
      if (!down('low')) return output;
      const config = layer.getConfig() as { strides?: [number, number]; padding?: 'same' | 'valid' };
      const run = (part: string) => {
        const [d, u] = [down(part)!, named.get(`vida/${layer.name}/${part}_up`)!];
        return input.rank === 4
          ? tf.conv2d(tf.conv2d(input as tf.Tensor4D, d as tf.Tensor4D, config.strides ?? 1, config.padding ?? 'valid'), u as tf.Tensor4D, 1, 'valid')
          : tf.matMul(tf.matMul(input as tf.Tensor2D, d as tf.Tensor2D), u as tf.Tensor2D);
      };
      return tf.addN([output, tf.mul(run('low'), adapters.scales.low), tf.mul(run('high'), adapters.scales.high)]);
    };
    const x = noiseBatch(6);
    const kernels = [...network.namedWeights().keys()].filter((k) => k.endsWith('/kernel'));
    const variables = [...named.values(), ...network.trainableVariables().filter((v) => kernels.some((k) => v.name.includes(k.split('/')[0]!)))];
    const gradients = () => tf.variableGrads(() => tf.mean(tf.square(network.logits(x))) as tf.Scalar, variables);
    const merged = { logits: network.logits(x), ...gradients() };
    const transforms = network.kernelTransforms.splice(0);
    network.hooks.push(branchForm);
    const reference = { logits: network.logits(x), ...gradients() };
    network.hooks.splice(0);
    network.kernelTransforms.push(...transforms);
    expect(adapters.layerNames().length).toBeGreaterThan(6); // every conv and dense of the body
    const scale = tf.tidy(() => tf.max(tf.abs(reference.logits)).dataSync()[0]!);
    expect(maxAbsDiff(merged.logits, reference.logits)).toBeLessThan(1e-5 * scale);
    for (const name of Object.keys(reference.grads)) {
      const [g, r] = [merged.grads[name]!, reference.grads[name]!];
      const size = tf.tidy(() => tf.max(tf.abs(r)).dataSync()[0]!);
      expect(size, name).toBeGreaterThan(0);
      expect(maxAbsDiff(g, r), name).toBeLessThan(1e-4 * size);
    }
    expect(Object.keys(merged.grads).sort()).toEqual(Object.keys(reference.grads).sort());
    tf.dispose([merged.logits, merged.value, reference.logits, reference.value, ...Object.values(merged.grads), ...Object.values(reference.grads), x]);
    network.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('checkpoints carry the adapters, verified by sha256', async () => {
    const { network } = await loadModel(MODEL);
    const adapters = VidaAdapters.create(network, { layers: '^s3_' }, Rng.derive(2, 'a')).attach(network);
    for (const v of adapters.variables()) v.assign(tf.randomNormal(v.shape, 0, 0.1, 'float32', 3));
    const dir = mkdtempSync(join(tmpdir(), 'ctta-vida-'));
    await saveModel(network, dir, { dataset: 'fashion-mnist', classNames: [], classes: [] });
    const { network: loaded } = await loadModel(dir);
    expect(loaded.adapters).toBeDefined();
    const x = noiseBatch(4);
    const [a, b] = [network.logits(x), loaded.logits(x)];
    expect(maxAbsDiff(a, b)).toBe(0);
    tf.dispose([x, a, b]);
    loaded.dispose();
    network.dispose();
    const bytes = readFileSync(join(dir, 'adapters.bin'));
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(join(dir, 'adapters.bin'), bytes);
    await expectCttaError(() => loadModel(dir), /adapter weights .* do not match the sha256/);
  });

  it('warm-up trains the adapters only: the backbone stays the source model', async () => {
    const train = await loadDataset('fashion-mnist', 'test');
    const { network } = await loadModel(MODEL);
    const before = weightValues(network);
    const adapters = VidaAdapters.create(network, {}, Rng.derive(3, 'a')).attach(network);
    const adapterBefore = weightValues(adapters.namedVariables());
    await pretrain(train, { ...PRETRAIN_DEFAULTS, model: 'resnet8', epochs: 1, limit: 128, batchSize: 32, optimizer: 'adam', lr: 1e-3, warmup: { network, variables: adapters.variables() } });
    const after = network.namedWeights();
    for (const [k, v] of before) expect(Array.from(after.get(k)!.dataSync())).toEqual(Array.from(v));
    const moved = changedWeights(adapters.namedVariables(), adapterBefore);
    expect(moved.length).toBe(adapters.variables().length);
    network.dispose();
  });
});

describe('ViDA method', () => {
  it('homeostatic scales follow the paper, or the released code (high-rank scale fixed at 1)', () => {
    expect(homeostaticScales(0.08, 0.05, 'paper')).toEqual({ low: 1 - 0.08, high: 1 + 0.08 });
    expect(homeostaticScales(0.02, 0.05, 'paper')).toEqual({ low: 1.02, high: 0.98 });
    expect(homeostaticScales(0.08, 0.05, 'authors-code')).toEqual({ low: 1 - 0.08, high: 1 });
    const views = tf.tensor3d([[[1, 2]], [[3, 2]], [[2, 5]]]); // 3 views, 1 sample, 2 classes
    // Unbiased variances: class 0 -> 1, class 1 -> 3; mean 2; x 0.1.
    const u = viewUncertainty(views);
    expect(u.dataSync()[0]).toBeCloseTo(0.2, 6);
    tf.dispose([views, u]);
  });

  it('the teacher is the EMA of the student, adapters included; restore 1 returns the warm-up weights', async () => {
    const c = await ctx();
    const vida = createMethod('vida', { momentum: 0.9, restore: 0, views: 2 });
    await vida.init(c);
    const teacher = (vida as unknown as { teacher: { namedTrainables(): Map<string, tf.Variable> } }).teacher;
    expect([...teacher.namedTrainables().keys()].some((k) => k.startsWith('vida/'))).toBe(true);
    const x = noiseBatch(5);
    const t0 = weightValues(teacher.namedTrainables());
    (await vida.predict(x)).dispose();
    await vida.adapt(x);
    const s1 = weightValues(c.network.namedTrainables());
    const t1 = weightValues(teacher.namedTrainables());
    let adapterMoved = 0;
    for (const [name, b] of t1) {
      const [a, s] = [t0.get(name)!, s1.get(name)!];
      for (let i = 0; i < a.length; i += Math.max(1, Math.floor(a.length / 5))) {
        expect(Math.abs(b[i]! - (0.9 * a[i]! + 0.1 * s[i]!))).toBeLessThan(1e-6 + 1e-6 * Math.abs(b[i]!));
        if (name.startsWith('vida/') && b[i] !== a[i]) adapterMoved++;
      }
    }
    expect(adapterMoved).toBeGreaterThan(0);
    vida.dispose();
    c.network.dispose();

    const c2 = await ctx();
    const r = createMethod('vida', { restore: 1, views: 2 });
    await r.init(c2);
    const warm = weightValues(c2.network); // source backbone + warm-up adapters
    (await r.predict(x)).dispose();
    await r.adapt(x);
    for (const [k, v] of c2.network.namedTrainables()) expect(Array.from(v.dataSync())).toEqual(Array.from(warm.get(k)!));
    x.dispose();
    r.dispose();
    c2.network.dispose();
  });

  it('refuses adapters warmed up on another backbone, and names the command when none exist', async () => {
    const c = await ctx();
    await expectCttaError(() => createMethod('vida', { warmup: join(ROOT, 'models/fmnist-resnet8-base5') }).init(c), /has no adapters|different backbone/);
    c.network.dispose();
    const c2 = await ctx({ modelPath: '/nonexistent/model' });
    await expectCttaError(() => createMethod('vida').init(c2), /ctta pretrain --adapters vida/);
    c2.network.dispose();
  });

  it('runs a stream without leaking tensors', async () => {
    const scenario = await fmnistScenario();
    const before = tf.memory().numTensors;
    const source = await runScenario({ scenario, method: 'source', seed: 0 });
    const vida = await runScenario({ scenario, method: 'vida', methodOptions: { views: 4 }, seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(vida.summary.leakedTensors).toBe(0);
    expect(vida.summary.meanError).toBeLessThan(source.summary.meanError);
  });
});
