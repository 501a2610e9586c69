import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Network } from '../src/models/network.js';
import { z } from 'zod';
import { commonModelOptions, createModel, isZooModel, listModels, registerModel } from '../src/models/registry.js';
import { expectCttaError, maxAbsDiff, useWasm } from './helpers.js';

beforeAll(useWasm);

describe('model zoo', () => {
  it('lists the required architectures', () => {
    const names = listModels().map((m) => m.name);
    for (const n of ['resnet8', 'resnet20', 'resnet26', 'wrn28_10', 'resnet26_gn']) expect(names).toContain(n);
  });

  it('executes the graph exactly as tfjs-layers does, and features -> head == logits', () => {
    for (const name of ['resnet8', 'resnet20', 'resnet8_gn']) {
      const net = createModel(name, { inputShape: [28, 28, 1], seed: 3 });
      const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
      const viaLayers = net.model.predict(x) as tf.Tensor;
      const logits = net.logits(x);
      expect(maxAbsDiff(viaLayers, logits)).toBeLessThan(1e-4);
      const f = net.features(x);
      expect(f.shape).toEqual([4, net.featureDim]);
      expect(maxAbsDiff(net.head(f), logits)).toBeLessThan(1e-5);
      tf.dispose([x, viaLayers, logits, f]);
      net.dispose();
    }
  });

  it('has the published size for WideResNet-28-10 and ResNet-26 stage widths', () => {
    const wrn = createModel('wrn28_10', { inputShape: [32, 32, 3] });
    expect(wrn.model.countParams()).toBe(36_479_194 + 17_952); // 36.5M incl. BN running stats
    expect(wrn.norms.length).toBe(25);
    wrn.dispose();
    const r26 = createModel('resnet26', { inputShape: [32, 32, 3] });
    expect(r26.featureDim).toBe(64);
    expect(r26.norms.length).toBe(1 + 4 * 3 * 2 + 2);
    r26.dispose();
  });

  it("has the published sizes of the OCL code's ResNet-18 (kuangliu's 11,173,962) and reduced ResNet-18", () => {
    const trainable = (name: string, o: Record<string, unknown>) => {
      const m = createModel(name, o);
      const n = m.model.trainableWeights.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);
      const shape = [m.featureDim, m.norms.length];
      m.dispose();
      return [n, ...shape];
    };
    // PyTorch's parameters(): weights without BatchNorm's running statistics.
    expect(trainable('resnet18', { inputShape: [32, 32, 3], numClasses: 10 })).toEqual([11_173_962, 512, 1 + 8 * 2 + 3]);
    expect(trainable('resnet18_reduced', { inputShape: [32, 32, 3], numClasses: 100 })).toEqual([1_109_240, 160, 1 + 8 * 2 + 3]);
    // 28x28 grey inputs (Fashion-MNIST): only the stem and the pooled size change.
    expect(trainable('resnet18_reduced', { inputShape: [28, 28, 1], numClasses: 10 })[0]).toBe(1_094_750 - 3 * 3 * 2 * 20);
  });

  it('is seeded: same seed same weights, other seed other weights', () => {
    // Every weight, and seed 0 too (tfjs initialisers take seed 0 for "unseeded").
    for (const seed of [0, 1]) {
      const [a, b, c] = [createModel('resnet8', { seed }), createModel('resnet8', { seed }), createModel('resnet8', { seed: seed + 2 })];
      const [wb, wc] = [b.namedWeights(), c.namedWeights()];
      for (const [name, wa] of a.namedWeights()) {
        expect(maxAbsDiff(wa, wb.get(name)!), name).toBe(0);
        if (name.endsWith('/kernel')) expect(maxAbsDiff(wa, wc.get(name)!), name).toBeGreaterThan(0);
      }
      [a, b, c].forEach((n) => n.dispose());
    }
  });

  it('switches BatchNorm between running and batch statistics, with alpha blending', () => {
    const net = createModel('resnet8');
    const x = tf.randomUniform([8, 28, 28, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    const running = net.logits(x);
    net.setNormStatistics('batch');
    const batch = net.logits(x);
    expect(maxAbsDiff(running, batch)).toBeGreaterThan(1e-3);
    net.setNormStatistics('batch', { alpha: 0 });
    expect(maxAbsDiff(net.logits(x), running)).toBeLessThan(1e-5); // alpha 0 == source statistics
    // Batch statistics: normalised activations of a BN layer have zero mean, unit variance.
    const norm = net.norms[0]!;
    norm.statistics = 'batch';
    norm.alpha = 1;
    const h = tf.conv2d(x, net.namedWeights().get('stem_conv/kernel') as tf.Tensor4D, 1, 'same');
    const out = norm.apply(h);
    const m = tf.moments(out, [0, 1, 2]);
    expect(Math.max(...Array.from(m.mean.abs().dataSync()))).toBeLessThan(1e-4);
    expect(Math.max(...Array.from(m.variance.sub(1).abs().dataSync()))).toBeLessThan(1e-2);
    tf.dispose([x, running, batch, h, out, m.mean, m.variance]);
    net.dispose();
  });

  it('updates running statistics with momentum only when asked', () => {
    const net = createModel('resnet8');
    const x = tf.randomUniform([8, 28, 28, 1], 0, 1, 'float32', 4) as tf.Tensor4D;
    const before = net.norms[0]!.movingMean!.dataSync().slice();
    net.setNormStatistics('batch');
    tf.dispose(net.logits(x));
    expect(Array.from(net.norms[0]!.movingMean!.dataSync())).toEqual(Array.from(before));
    net.setNormStatistics('batch', { momentum: 0.5 });
    tf.dispose(net.logits(x));
    expect(Array.from(net.norms[0]!.movingMean!.dataSync())).not.toEqual(Array.from(before));
    x.dispose();
    net.dispose();
  });

  it('splits any LayersModel at its final Dense layer and returns pre-softmax logits', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [12, 12, 3], filters: 4, kernelSize: 3, activation: 'relu', useBias: true }),
        tf.layers.batchNormalization(),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 5, activation: 'softmax' }),
      ],
    });
    const net = new Network(model, { architecture: 'layers-model', options: {} });
    const x = tf.randomUniform([3, 12, 12, 3]) as tf.Tensor4D;
    const probs = model.predict(x) as tf.Tensor;
    expect(maxAbsDiff(tf.softmax(net.logits(x)), probs)).toBeLessThan(1e-5);
    expect(net.norms.length).toBe(1);
    expect(net.featureDim).toBe(100);
    net.dispose();
  });

  it('gives clear errors for an unknown model, a bad option and a wrong input shape', async () => {
    await expectCttaError(() => createModel('resnet9'), /unknown model "resnet9".*fix: use one of: resnet8/);
    await expectCttaError(() => createModel('resnet8', { widht: 3 }), /widht.*valid options: .*width/);
    await expectCttaError(() => createModel('resnet8', { numClasses: 1 }), /numClasses/);
    const net = createModel('resnet8');
    const x = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
    await expectCttaError(() => net.logits(x), /\[2, 32, 32, 3\].*\[N, 28, 28, 1\]/);
    x.dispose();
    net.dispose();
  });

  it('builds a model added with registerModel, with its validated options, and lists it', async () => {
    const tinyOptions = z.strictObject({ ...commonModelOptions, filters: z.number().int().positive().default(4) });
    registerModel({
      name: 'tiny_cnn',
      description: 'one conv, BN, dense',
      schema: tinyOptions,
      build: (o) =>
        tf.sequential({
          layers: [
            tf.layers.conv2d({ inputShape: o.inputShape, filters: o.filters, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: o.seed }) }),
            tf.layers.batchNormalization(),
            tf.layers.flatten(),
            tf.layers.dense({ units: o.numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: o.seed + 1 }) }),
          ],
        }),
    });
    expect(isZooModel('tiny_cnn')).toBe(true);
    expect(listModels().at(-1)).toEqual({ name: 'tiny_cnn', description: 'one conv, BN, dense' });
    const net = createModel('tiny_cnn', { inputShape: [8, 8, 1], numClasses: 3, filters: 2 });
    expect(net.spec).toEqual({ architecture: 'tiny_cnn', options: { inputShape: [8, 8, 1], numClasses: 3, norm: 'batch', groups: 8, seed: 0, filters: 2 } });
    expect(net.numClasses).toBe(3);
    expect(net.norms.length).toBe(1);
    const x = tf.zeros([2, 8, 8, 1]) as tf.Tensor4D;
    const logits = net.logits(x);
    expect(logits.shape).toEqual([2, 3]);
    tf.dispose([x, logits]);
    net.dispose();
    // Its options are validated like the shipped ones', and unknown names list it.
    await expectCttaError(() => createModel('tiny_cnn', { filterz: 2 }), /model "tiny_cnn": option filterz.*valid options: .*filters/);
    await expectCttaError(() => createModel('tiny'), /unknown model "tiny".*use one of: resnet8, .*tiny_cnn/);
  });
});
