/**
 * Network.foldNorms: conv -> BatchNorm (-> ReLU) as one fused convolution while the norm uses its
 * stored statistics. The fold must compute the same function as the layer-by-layer path, give the
 * same gradients, and never apply where the norm uses batch statistics or a hook must see the
 * layers.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/checkpoint.js';
import type { Network } from '../src/models/network.js';
import { createModel } from '../src/models/registry.js';
import { ROOT, maxAbsDiff, useWasm } from './helpers.js';

beforeAll(useWasm);

/** Non-trivial stored statistics and affine parameters (a fresh zoo model has mean 0, var 1, gamma 1, beta 0). */
function randomiseNorms(net: Network, seed: number): void {
  net.norms.forEach((n, i) => {
    const c = n.channels;
    n.movingMean!.assign(tf.randomNormal([c], 0, 0.5, 'float32', seed + 4 * i));
    n.movingVariance!.assign(tf.randomUniform([c], 0.2, 3, 'float32', seed + 4 * i + 1));
    n.gamma?.assign(tf.randomUniform([c], 0.5, 1.5, 'float32', seed + 4 * i + 2));
    n.beta?.assign(tf.randomNormal([c], 0, 0.3, 'float32', seed + 4 * i + 3));
  });
}

function relativeDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => maxAbsDiff(a, b) / Math.max(1e-12, tf.max(tf.abs(b)).dataSync()[0]!));
}

function logitsBothWays(net: Network, x: tf.Tensor4D): { folded: tf.Tensor2D; plain: tf.Tensor2D } {
  net.foldNorms = true;
  const folded = net.logits(x);
  net.foldNorms = false;
  const plain = net.logits(x);
  net.foldNorms = true;
  return { folded, plain };
}

/** Counts the FusedConv2D kernels a call runs (the fold's signature). */
async function fusedConvs(fn: () => tf.Tensor): Promise<number> {
  const info = await tf.profile(() => fn());
  return info.kernels.filter((k) => k.name === 'FusedConv2D').length;
}

describe('BatchNorm folded into convolutions', () => {
  it('gives the layer-by-layer logits (1e-5 relative) on zoo models with random statistics', async () => {
    for (const [name, shape] of [
      ['resnet8', [28, 28, 1]],
      ['resnet20', [32, 32, 3]],
      ['resnet18_reduced', [32, 32, 3]],
    ] as const) {
      const net = createModel(name, { inputShape: [...shape], seed: 5 });
      randomiseNorms(net, 11);
      const x = tf.randomUniform([6, ...shape], 0, 1, 'float32', 2) as tf.Tensor4D;
      const { folded, plain } = logitsBothWays(net, x);
      expect(relativeDiff(folded, plain), name).toBeLessThan(1e-5);
      // Every conv of these models is followed by a BatchNorm: all of them fold.
      const convs = net.bodyLayers().filter((l) => l.getClassName() === 'Conv2D').length;
      expect(await fusedConvs(() => net.logits(x)), name).toBe(convs);
      tf.dispose([x, folded, plain]);
      net.dispose();
    }
  });

  it('gives the shipped checkpoint the same predictions', async () => {
    const { network: net } = await loadModel(`${ROOT}/models/fmnist-resnet8`);
    const x = tf.randomUniform([32, 28, 28, 1], 0, 1, 'float32', 9) as tf.Tensor4D;
    const { folded, plain } = logitsBothWays(net, x);
    const p = tf.softmax(folded);
    const q = tf.softmax(plain);
    expect(maxAbsDiff(p, q)).toBeLessThan(1e-5);
    expect(relativeDiff(folded, plain)).toBeLessThan(1e-5);
    tf.dispose([x, folded, plain, p, q]);
    net.dispose();
  });

  it('passes gradients to the conv kernels and the norm affine parameters as the unfolded path does', () => {
    const net = createModel('resnet8', { inputShape: [28, 28, 1], seed: 1 });
    randomiseNorms(net, 3);
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 4) as tf.Tensor4D;
    const vars = [...net.trainableVariables()];
    const grads = (fold: boolean): tf.NamedTensorMap => {
      net.foldNorms = fold;
      return tf.variableGrads(() => tf.sum(tf.square(net.logits(x))) as tf.Scalar, vars).grads;
    };
    const a = grads(true);
    const b = grads(false);
    for (const v of vars) {
      expect(relativeDiff(a[v.name]!, b[v.name]!), v.name).toBeLessThan(1e-4);
    }
    tf.dispose([x, ...Object.values(a), ...Object.values(b)]);
    net.dispose();
  });

  it('never folds a norm that uses or updates batch statistics, nor while a hook watches the layers', async () => {
    const net = createModel('resnet8', { inputShape: [28, 28, 1], seed: 2 });
    randomiseNorms(net, 5);
    const x = tf.randomUniform([8, 28, 28, 1], 0, 1, 'float32', 6) as tf.Tensor4D;
    net.setNormStatistics('batch');
    expect(await fusedConvs(() => net.logits(x))).toBe(0);
    net.setNormStatistics('ema', { momentum: 0.1 });
    expect(await fusedConvs(() => net.logits(x))).toBe(0);
    // ...but the same 'ema' layers, frozen for held-out evaluation, only read their statistics.
    const before = net.norms[0]!.movingMean!.dataSync().slice();
    expect(await net.withFrozenStatistics(() => fusedConvs(() => net.logits(x)))).toBeGreaterThan(0);
    expect(Array.from(net.norms[0]!.movingMean!.dataSync())).toEqual(Array.from(before));
    net.setNormStatistics('running');
    // A method that swaps one layer's apply on the instance (RoTTA's robust BN) has it called.
    const swapped = net.norms[1]!;
    let calls = 0;
    (swapped as { apply: typeof swapped.apply }).apply = (t) => {
      calls++;
      return tf.clone(t);
    };
    expect(await fusedConvs(() => net.logits(x))).toBe(net.bodyLayers().filter((l) => l.getClassName() === 'Conv2D').length - 1);
    expect(calls).toBe(1);
    delete (swapped as Partial<Pick<typeof swapped, 'apply'>>).apply;
    const seen: string[] = [];
    net.hooks.push((call) => {
      seen.push(call.layer.name);
      return call.output;
    });
    expect(await fusedConvs(() => net.logits(x))).toBe(0);
    expect(seen.some((n) => /bn|norm/i.test(n))).toBe(true);
    net.hooks.length = 0;
    tf.dispose(x);
    net.dispose();
  });

  it('leaks no tensors', () => {
    const net = createModel('resnet8', { inputShape: [28, 28, 1], seed: 2 });
    const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 6) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    tf.dispose(net.forward(x));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(x);
    net.dispose();
  });
});

describe('forward-pass memory', () => {
  it('frees each intermediate output after its last reader: peak is a few activations, not all of them', async () => {
    const net = createModel('resnet20', { inputShape: [32, 32, 3], seed: 1 });
    const x = tf.randomUniform([64, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const activation = 64 * 32 * 32 * 16 * 4; // the largest layer output (bytes)
    for (const mode of ['running', 'batch'] as const) {
      net.setNormStatistics(mode);
      const info = await tf.profile(() => net.logits(x));
      // ResNet-20 has 19 conv layers of this size or a quarter/half of it; keeping every output
      // alive would peak near 40 activations.
      expect(info.peakBytes - x.size * 4, mode).toBeLessThan(8 * activation);
    }
    // The same pass under a gradient tape still differentiates (the tape holds its own references).
    const { value, grads } = tf.variableGrads(() => tf.sum(net.logits(x)) as tf.Scalar, net.normAffineVariables());
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    expect(Object.keys(grads).length).toBe(net.normAffineVariables().length);
    tf.dispose([x, value, ...Object.values(grads)]);
    net.dispose();
  });
});
