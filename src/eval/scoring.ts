/**
 * The score of one run, accumulated batch by batch: per-domain error, online error, calibration,
 * predictions, time and memory (the method's state parts included), and (incremental scenarios)
 * the accuracy matrix and the anytime evaluation points. It turns into the batch records and the
 * summary of the result file.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import type { StreamBatch } from '../streams/stream.js';
import { CalibrationBins, matrixMetrics, mean, pooledAccuracy, predictedClass } from './metrics.js';
import { COLUMN_NAME, type BatchRecord, type RunSummary } from './records.js';

export class Scoreboard {
  private readonly seen: Float64Array;
  private readonly correct: Float64Array;
  private readonly calibration = new CalibrationBins(15);
  /** Predicted dataset class per stream position (for determinism checks). */
  readonly predictions: Int32Array;
  readonly accuracyMatrix: number[][] = [];
  /** Pooled accuracy on the seen tasks' held-out images at each anytime evaluation point. */
  readonly anytimeAccuracy: number[] = [];
  private readonly statePeaks = new Map<string, number>();
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

  /**
   * An anytime evaluation point from the seen tasks' [task, images, correct]; returns the counts
   * for the batch record, or undefined when the seen tasks hold no held-out image (no point).
   */
  anytime(counts: [number, number, number][]): [number, number, number][] | undefined {
    const accuracy = pooledAccuracy(counts);
    if (accuracy === undefined) return undefined;
    this.anytimeAccuracy.push(accuracy);
    return counts;
  }

  /**
   * Folds the method's `stateParts()` into each part's peak. Checked here, where the method and
   * batch are known: a NaN or a bad name would otherwise only fail when the summary is written,
   * after the whole run, naming neither.
   */
  sampleStateParts(parts: unknown, method: string, batch: number): void {
    if (parts === undefined) return;
    const bad = (what: string) =>
      new CttaError(`method "${method}" returned ${what} from stateParts() at batch ${batch}`, {
        fix: 'return an object of byte counts (finite numbers >= 0) named by identifiers, e.g. { buffer: 1024, optimizer: 512 }',
        exitCode: 1,
      });
    if (parts === null || typeof parts !== 'object' || Array.isArray(parts)) throw bad(parts === null ? 'null' : Array.isArray(parts) ? 'an array' : typeof parts);
    for (const [name, bytes] of Object.entries(parts)) {
      if (!COLUMN_NAME.test(name)) throw bad(`a part named ${JSON.stringify(name)} (not an identifier)`);
      if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) throw bad(`${String(bytes)} bytes for part "${name}"`);
      this.statePeaks.set(name, Math.max(this.statePeaks.get(name) ?? 0, bytes));
    }
  }

  /** The batch's record for the result file. */
  record(batch: StreamBatch, perDomain: [number, number, number][], predictMs: number, adaptMs: number, diagnostics?: Record<string, number>, anytime?: [number, number, number][]): BatchRecord {
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
      ...(anytime ? { anytime } : {}),
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
    // Both only when measured: the summaries of other runs stay as they were, field for field.
    const anytime = this.anytimeAccuracy.length > 0 ? { averageAnytimeAccuracy: mean(this.anytimeAccuracy) } : {};
    const parts = this.statePeaks.size > 0 ? { peakStateParts: Object.fromEntries(this.statePeaks) } : {};
    return {
      type: 'summary',
      n: this.images,
      errorPerDomain,
      meanError: mean(Object.values(errorPerDomain)),
      onlineError: this.images ? 1 - this.correctTotal / this.images : 0,
      ece: this.calibration.ece(),
      peakTensorBytes: this.peakBytes,
      methodStateBytes,
      ...parts,
      imagesPerSecond: this.methodMs > 0 ? (this.images * 1000) / this.methodMs : 0,
      seconds: round(this.methodMs / 1000),
      leakedTensors,
      ...matrix,
      ...anytime,
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
