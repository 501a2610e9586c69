/** Clean accuracy of a model on a labelled dataset: overall, per class, confusion matrix. */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../models/network.js';
import type { ImageDataset } from '../streams/datasets/types.js';
import { yieldToEventLoop } from '../util/yield.js';
import { imageBatch, labelBatch, samplesOfClasses } from './batches.js';

export interface CleanEvaluation {
  accuracy: number;
  n: number;
  /** Dataset class ids, in head order. */
  classes: number[];
  perClassAccuracy: number[];
  /** confusion[true][predicted], head order. */
  confusion: number[][];
}

export async function evaluateClean(
  net: Network,
  data: ImageDataset,
  options: { classes?: number[]; batchSize?: number; limit?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<CleanEvaluation> {
  const classes = options.classes ?? data.classNames.map((_, i) => i);
  const classIndex = new Map(classes.map((c, i) => [c, i] as const));
  let samples = samplesOfClasses(data, classes);
  if (options.limit !== undefined) samples = samples.subarray(0, options.limit);
  const k = classes.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const batchSize = options.batchSize ?? 256;
  const saved = net.norms.map((n) => n.statistics);
  net.setNormStatistics('running');
  try {
    for (let start = 0; start < samples.length; start += batchSize) {
      const idx = samples.subarray(start, start + batchSize);
      const labels = labelBatch(data, idx, classIndex);
      const pred = tf.tidy(() => net.logits(imageBatch(data, idx)).argMax(1));
      const p = (await pred.data()) as Int32Array;
      pred.dispose();
      for (let i = 0; i < idx.length; i++) confusion[labels[i]!]![p[i]!]!++;
      options.onProgress?.(Math.min(start + batchSize, samples.length), samples.length);
      await yieldToEventLoop();
    }
  } finally {
    net.norms.forEach((n, i) => (n.statistics = saved[i]!));
  }
  const correct = confusion.reduce((s, row, i) => s + row[i]!, 0);
  return {
    accuracy: samples.length ? correct / samples.length : 0,
    n: samples.length,
    classes,
    perClassAccuracy: confusion.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total ? row[i]! / total : 0;
    }),
    confusion,
  };
}
