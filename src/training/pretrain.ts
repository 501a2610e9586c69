/**
 * Supervised training of a source model (`ctta pretrain`): seeded shuffling and augmentation,
 * SGD (Nesterov momentum) or Adam, cosine learning-rate decay, decoupled from any UI through an
 * `onProgress` callback.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import { createModel } from '../models/registry.js';
import type { Network } from '../models/network.js';
import type { ImageDataset } from '../streams/datasets/types.js';
import { Rng } from '../util/rng.js';
import { yieldToEventLoop } from '../util/yield.js';
import { createOptimizer, disposeOptimizer, setLearningRate } from './optimizer.js';
import { imageBatch, labelBatch, samplesOfClasses, type AugmentOptions } from './batches.js';

export interface PretrainOptions {
  model: string;
  modelOptions?: Record<string, unknown>;
  /** Dataset class ids to train on (head order); default all. */
  classes?: number[];
  epochs: number;
  batchSize: number;
  optimizer: 'sgd' | 'adam';
  lr: number;
  /** SGD momentum (Nesterov). */
  momentum: number;
  /** L2 weight decay on conv/dense kernels (not on biases or norm parameters). */
  weightDecay: number;
  schedule: 'cosine' | 'constant';
  augment: AugmentOptions | false;
  /** Train on the first `limit` samples of a seeded permutation (quick runs and tests). */
  limit?: number;
  seed: number;
  /**
   * Adapter warm-up instead of training from scratch: train only `variables` of an existing
   * `network` (e.g. ViDA adapters), keeping its norm layers on their running statistics so the
   * backbone stays exactly the source model. The caller keeps ownership of the network.
   */
  warmup?: { network: Network; variables: tf.Variable[] };
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainProgress {
  epoch: number;
  epochs: number;
  step: number;
  stepsPerEpoch: number;
  /** Mean training loss so far in this epoch. */
  loss: number;
  imagesPerSecond: number;
  etaSeconds: number;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  trainAccuracy: number;
  seconds: number;
  lr: number;
}

export const PRETRAIN_DEFAULTS: Omit<PretrainOptions, 'model'> = {
  epochs: 8,
  batchSize: 128,
  optimizer: 'sgd',
  lr: 0.05,
  momentum: 0.9,
  weightDecay: 5e-4,
  schedule: 'cosine',
  augment: { cropPad: 2, flip: true },
  seed: 0,
};

export async function pretrain(train: ImageDataset, options: PretrainOptions): Promise<{ network: Network; history: EpochRecord[] }> {
  const classes = options.classes ?? train.classNames.map((_, i) => i);
  for (const c of classes) {
    if (!Number.isInteger(c) || c < 0 || c >= train.classNames.length) {
      throw new CttaError(`class ${c} does not exist in ${train.name} (classes 0-${train.classNames.length - 1})`, { fix: 'pass --classes like 0-4 or 0,2,5' });
    }
  }
  const classIndex = new Map(classes.map((c, i) => [c, i] as const));
  let samples = samplesOfClasses(train, classes);
  if (options.limit !== undefined) {
    samples = Rng.derive(options.seed, 'limit').shuffle(samples.slice()).subarray(0, options.limit).sort();
  }
  if (samples.length < options.batchSize) {
    throw new CttaError(`only ${samples.length} training samples for batch size ${options.batchSize}`, { fix: 'lower --batch-size or train on more data' });
  }
  if (options.warmup && options.warmup.network.numClasses !== classes.length) {
    throw new CttaError(`the model to warm up has ${options.warmup.network.numClasses} classes but training uses ${classes.length}`, { fix: 'pass the --classes the model was trained on' });
  }
  const network =
    options.warmup?.network ??
    createModel(options.model, {
      inputShape: [train.height, train.width, train.channels],
      numClasses: classes.length,
      seed: options.seed,
      ...options.modelOptions,
    });
  const owned = !options.warmup;
  network.setNormStatistics(owned ? 'batch' : 'running', { momentum: 0.1 });
  const variables = options.warmup?.variables ?? network.trainableVariables();
  // Weight decay on the model's own kernels when training from scratch; none in a warm-up.
  const decayed = new Set(owned ? [...network.namedWeights()].filter(([name]) => name.endsWith('/kernel')).map(([, v]) => v) : []);
  const optimizer = createOptimizer(options.optimizer, { lr: options.lr, momentum: options.momentum, nesterov: true });
  const stepsPerEpoch = Math.floor(samples.length / options.batchSize); // drop the ragged last batch
  const totalSteps = stepsPerEpoch * options.epochs;
  const history: EpochRecord[] = [];
  const started = performance.now();
  let globalStep = 0;
  try {
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      const order = Rng.derive(options.seed, 'shuffle', epoch).shuffle(samples.slice());
      const augmentRng = Rng.derive(options.seed, 'augment', epoch);
      const epochStart = performance.now();
      let lossSum = 0;
      let correct = 0;
      let lr = options.lr;
      for (let step = 0; step < stepsPerEpoch; step++, globalStep++) {
        lr = options.schedule === 'cosine' ? 0.5 * options.lr * (1 + Math.cos((Math.PI * globalStep) / totalSteps)) : options.lr;
        setLearningRate(optimizer, lr);
        const idx = order.subarray(step * options.batchSize, (step + 1) * options.batchSize);
        const labels = labelBatch(train, idx, classIndex);
        const [loss, hits] = tf.tidy(() => {
          const x = options.augment ? imageBatch(train, idx, { options: options.augment, rng: augmentRng }) : imageBatch(train, idx);
          const y = tf.oneHot(tf.tensor1d(labels, 'int32'), classes.length);
          let hits: tf.Scalar | undefined;
          const { value, grads } = tf.variableGrads(() => {
            const logits = network.logits(x);
            // Kept: variableGrads disposes everything else computed inside.
            hits = tf.keep(logits.argMax(1).equal(tf.tensor1d(labels, 'int32')).sum()) as tf.Scalar;
            return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
          }, variables);
          for (const v of variables) {
            if (options.weightDecay > 0 && decayed.has(v)) grads[v.name] = grads[v.name]!.add(v.mul(options.weightDecay));
          }
          optimizer.applyGradients(grads as tf.NamedTensorMap as never);
          return [value, hits!];
        });
        const [l, h] = [(await loss.data())[0]!, (await hits.data())[0]!];
        loss.dispose();
        hits.dispose();
        if (!Number.isFinite(l)) {
          throw new CttaError(`training loss became ${l} at epoch ${epoch + 1}, step ${step + 1}`, { fix: 'lower --lr (or use --optimizer adam)', exitCode: 1 });
        }
        lossSum += l;
        correct += h;
        // Let timers run (progress output, Ctrl-C): awaiting tensor data alone only yields to
        // microtasks.
        await yieldToEventLoop();
        if (options.onProgress) {
          const elapsed = (performance.now() - started) / 1000;
          const done = globalStep + 1;
          options.onProgress({
            epoch: epoch + 1,
            epochs: options.epochs,
            step: step + 1,
            stepsPerEpoch,
            loss: lossSum / (step + 1),
            imagesPerSecond: (done * options.batchSize) / elapsed,
            etaSeconds: (elapsed / done) * (totalSteps - done),
          });
        }
      }
      history.push({
        epoch: epoch + 1,
        loss: lossSum / stepsPerEpoch,
        trainAccuracy: correct / (stepsPerEpoch * options.batchSize),
        seconds: (performance.now() - epochStart) / 1000,
        lr,
      });
    }
  } catch (err) {
    if (owned) network.dispose();
    throw err;
  } finally {
    disposeOptimizer(optimizer);
  }
  network.setNormStatistics('running');
  return { network, history };
}
