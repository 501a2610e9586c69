/**
 * The score of one run, accumulated batch by batch: per-domain error, online error, calibration,
 * predictions, time and memory, and (incremental scenarios) the accuracy matrix. It turns into
 * the batch records and the summary of the result file.
 */
import * as tf from '@tensorflow/tfjs';
import type { StreamBatch } from '../streams/stream.js';
import { CalibrationBins, matrixMetrics, mean, predictedClass } from './metrics.js';
import type { BatchRecord, RunSummary } from './records.js';

export class Scoreboard {
  private readonly seen: Float64Array;
  private readonly correct: Float64Array;
  private readonly calibration = new CalibrationBins(15);
  /** Predicted dataset class per stream position (for determinism checks). */
  readonly predictions: Int32Array;
  readonly accuracyMatrix: number[][] = [];
  private images = 0;
  private correctTotal = 0;
  private methodMs = 0;
  private peakBytes = tf.memory().numBytes;

  constructor(
    private readonly domainNames: readonly string[],
    streamLength: number,
  ) {
    this.seen = new Float64Array(domainNames.length);
    this.correct = new Float64Array(domainNames.length);
    this.predictions = new Int32Array(streamLength);
  }

  /**
   * Scores a batch's [N, K] probabilities (row-major) against its labels; returns the per-domain
   * [domain, images, correct] counts. The runner has checked them (method-output.ts).
   */
  score(batch: StreamBatch, probs: Float32Array, numClasses: number): [number, number, number][] {
    const perDomain = new Map<number, [number, number]>();
    const k = numClasses;
    for (let i = 0; i < batch.y.length; i++) {
      const best = predictedClass(probs, i, k);
      const confidence = probs[i * k + best]!;
      const ok = best === batch.y[i];
      this.predictions[batch.start + i] = best;
      this.calibration.add(confidence, ok);
      const d = batch.domain[i]!;
      const cell = perDomain.get(d) ?? [0, 0];
      cell[0] += 1;
      cell[1] += ok ? 1 : 0;
      perDomain.set(d, cell);
    }
    const counts = [...perDomain].map(([d, [seen, correct]]) => [d, seen, correct] as [number, number, number]);
    for (const [d, seen, correct] of counts) {
      this.seen[d]! += seen;
      this.correct[d]! += correct;
      this.images += seen;
      this.correctTotal += correct;
    }
    return counts;
  }

  /** Adds time spent in the method (predict + adapt) to the throughput. */
  timed(ms: number): void {
    this.methodMs += ms;
  }

  /** Tensor memory now, for the peak. */
  sampleMemory(): void {
    this.peakBytes = Math.max(this.peakBytes, tf.memory().numBytes);
  }

  /** The batch's record for the result file. */
  record(batch: StreamBatch, perDomain: [number, number, number][], predictMs: number, adaptMs: number, diagnostics?: Record<string, number>): BatchRecord {
    return {
      type: 'batch',
      i: batch.index,
      start: batch.start,
      end: batch.end,
      task: batch.task[0]!,
      perDomain,
      predictMs: round(predictMs),
      adaptMs: round(adaptMs),
      tensorBytes: tf.memory().numBytes,
      rss: process.memoryUsage.rss(),
      ...(diagnostics && Object.keys(diagnostics).length > 0 ? { diagnostics: { ...diagnostics } } : {}),
    };
  }

  get progress(): { images: number; error: number; imagesPerSecond: number } {
    return { images: this.images, error: 1 - this.correctTotal / this.images, imagesPerSecond: (this.images * 1000) / this.methodMs };
  }

  summary(methodStateBytes: number, leakedTensors: number): RunSummary {
    const errorPerDomain: Record<string, number> = {};
    this.domainNames.forEach((name, i) => {
      if (this.seen[i]! > 0) errorPerDomain[name] = 1 - this.correct[i]! / this.seen[i]!;
    });
    const matrix = this.accuracyMatrix.length > 0 ? { accuracyMatrix: this.accuracyMatrix, ...matrixMetrics(this.accuracyMatrix) } : {};
    return {
      type: 'summary',
      n: this.images,
      errorPerDomain,
      meanError: mean(Object.values(errorPerDomain)),
      onlineError: this.images ? 1 - this.correctTotal / this.images : 0,
      ece: this.calibration.ece(),
      peakTensorBytes: this.peakBytes,
      methodStateBytes,
      imagesPerSecond: this.methodMs > 0 ? (this.images * 1000) / this.methodMs : 0,
      seconds: round(this.methodMs / 1000),
      leakedTensors,
      ...matrix,
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
