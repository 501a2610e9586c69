import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../src/streams/datasets/fashion-mnist.js';
import type { ImageDataset } from '../src/streams/datasets/types.js';
import { evaluateClean } from '../src/training/evaluate.js';
import { pretrain, PRETRAIN_DEFAULTS } from '../src/training/pretrain.js';
import { createOptimizer, disposeOptimizer, setLearningRate } from '../src/training/optimizer.js';
import { useWasm } from './helpers.js';

// The shipped test split stands in for training data here, so the suite needs no train files:
// the first 8000 images train, the last 2000 evaluate.
let train: ImageDataset;
let heldOut: ImageDataset;

function slice(d: ImageDataset, from: number, to: number): ImageDataset {
  const size = d.height * d.width * d.channels;
  return { ...d, images: d.images.subarray(from * size, to * size), labels: d.labels.subarray(from, to), n: to - from };
}

beforeAll(async () => {
  await useWasm();
  const test = await loadFashionMnist('test', { allowDownload: false });
  train = slice(test, 0, 8000);
  heldOut = slice(test, 8000, 10000);
});

describe('pretraining on wasm', () => {
  it('one seeded epoch on 2,000 images lifts held-out accuracy well above chance, without leaking tensors', async () => {
    const start = tf.memory().numTensors;
    const { network, history } = await pretrain(train, { ...PRETRAIN_DEFAULTS, model: 'resnet8', epochs: 1, limit: 2000, batchSize: 32, seed: 1 });
    expect(history).toHaveLength(1);
    const ev = await evaluateClean(network, heldOut);
    expect(ev.accuracy).toBeGreaterThan(0.4); // chance is 0.1
    network.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('keeps the tensor count flat over 100 training steps (every weight trained, BN statistics updated)', async () => {
    const start = tf.memory().numTensors;
    const counts: number[] = [];
    const { network } = await pretrain(train, {
      ...PRETRAIN_DEFAULTS,
      model: 'resnet8',
      modelOptions: { width: 8 },
      epochs: 1,
      limit: 1600,
      batchSize: 16,
      onProgress: (p) => {
        if (p.step === 10 || p.step === 100) counts.push(tf.memory().numTensors);
      },
    });
    expect(counts).toHaveLength(2);
    expect(counts[1]).toBe(counts[0]);
    network.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('is deterministic: the same seed gives the same weights, another seed does not', async () => {
    const opts = { ...PRETRAIN_DEFAULTS, model: 'resnet8', modelOptions: { width: 4 }, epochs: 1, limit: 256, batchSize: 32 };
    const [a, b, c] = [await pretrain(train, { ...opts, seed: 3 }), await pretrain(train, { ...opts, seed: 3 }), await pretrain(train, { ...opts, seed: 4 })];
    const w = (n: typeof a) => Array.from(n.network.namedWeights().get('s3_b0_conv2/kernel')!.dataSync());
    expect(w(a)).toEqual(w(b));
    expect(w(a)).not.toEqual(w(c));
    expect(Array.from(a.network.norms[3]!.movingVariance!.dataSync())).toEqual(Array.from(b.network.norms[3]!.movingVariance!.dataSync()));
    [a, b, c].forEach((r) => r.network.dispose());
  });

  it('trains on a class subset with a head of that size', async () => {
    const { network } = await pretrain(train, { ...PRETRAIN_DEFAULTS, model: 'resnet8', modelOptions: { width: 4 }, classes: [0, 1, 2, 3, 4], epochs: 1, limit: 256, batchSize: 32 });
    expect(network.numClasses).toBe(5);
    const ev = await evaluateClean(network, heldOut, { classes: [0, 1, 2, 3, 4] });
    expect(ev.n).toBe(Array.from(heldOut.labels).filter((l) => l < 5).length);
    network.dispose();
  });
});

describe('optimizers', () => {
  it('setLearningRate changes the step size of SGD, momentum and Adam', () => {
    for (const kind of ['sgd', 'adam'] as const) {
      for (const momentum of kind === 'sgd' ? [0, 0.9] : [0]) {
        // Adam's first step moves each parameter by about lr; SGD's by lr * gradient (= lr here).
        const w = tf.variable(tf.zeros([1]));
        const opt = createOptimizer(kind, { lr: 1, momentum });
        setLearningRate(opt, 0.01);
        opt.minimize(() => tf.sum(w) as tf.Scalar);
        expect(Math.abs(w.dataSync()[0]! + 0.01)).toBeLessThan(1e-4);
        disposeOptimizer(opt);
        w.dispose();
      }
    }
  });
});
