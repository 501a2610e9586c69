/**
 * Metric formulas (pure functions on counts, so they are easy to test by hand).
 * Errors and accuracies are fractions in [0, 1].
 */

/** Expected calibration error over equal-width confidence bins (Guo et al. 2017). */
export class CalibrationBins {
  readonly count: Float64Array;
  readonly confidence: Float64Array;
  readonly correct: Float64Array;

  constructor(readonly bins = 15) {
    this.count = new Float64Array(bins);
    this.confidence = new Float64Array(bins);
    this.correct = new Float64Array(bins);
  }

  add(confidence: number, isCorrect: boolean): void {
    // Bin b holds confidences in (b/B, (b+1)/B]; confidence 0 goes to bin 0.
    const b = Math.min(this.bins - 1, Math.max(0, Math.ceil(confidence * this.bins) - 1));
    this.count[b]! += 1;
    this.confidence[b]! += confidence;
    this.correct[b]! += isCorrect ? 1 : 0;
  }

  /** sum_b (n_b / N) * |accuracy_b - mean confidence_b|. */
  ece(): number {
    const total = this.count.reduce((a, b) => a + b, 0);
    if (total === 0) return 0;
    let e = 0;
    for (let b = 0; b < this.bins; b++) {
      const n = this.count[b]!;
      if (n > 0) e += (n / total) * Math.abs(this.correct[b]! / n - this.confidence[b]! / n);
    }
    return e;
  }
}

/** Accuracy-matrix metrics. A[i][j] = accuracy on task j after finishing task i (T x T). */
export interface MatrixMetrics {
  /** mean_j A[T-1][j] */
  finalAverageAccuracy: number;
  /** mean_i mean_{j<=i} A[i][j] */
  averageIncrementalAccuracy: number;
  /** mean over j < T-1 of max_{t<T-1} A[t][j] - A[T-1][j] (Chaudhry et al. 2018) */
  forgetting: number;
  /**
   * Forgetting as the OCL code of Mai et al. (online-continual-learning, experiment/metrics.py;
   * OnPro and OCM reuse it) computes it, for comparison with their published numbers: mean over
   * all T tasks of max_{t<=T-1} A[t][j] - A[T-1][j]. The last task's term is 0 unless it scored
   * higher before it was trained on than after; taking the max over the final row too turns a
   * task's negative forgetting into 0. With neither, it is (T-1)/T of `forgetting`.
   */
  legacyForgetting: number;
  /** mean over j < T-1 of A[T-1][j] - A[j][j] (Lopez-Paz & Ranzato 2017) */
  bwt: number;
}

export function matrixMetrics(A: number[][]): MatrixMetrics {
  const T = A.length;
  if (T === 0) return { finalAverageAccuracy: 0, averageIncrementalAccuracy: 0, forgetting: 0, legacyForgetting: 0, bwt: 0 };
  const last = A[T - 1]!;
  const finalAverageAccuracy = mean(last.slice(0, T));
  const averageIncrementalAccuracy = mean(A.map((row, i) => mean(row.slice(0, i + 1))));
  const earlier = Array.from({ length: T - 1 }, (_, j) => j);
  const forgetting = earlier.length ? mean(earlier.map((j) => Math.max(...A.slice(0, T - 1).map((r) => r[j]!)) - last[j]!)) : 0;
  const every = Array.from({ length: T }, (_, j) => j);
  const legacyForgetting = mean(every.map((j) => Math.max(...A.map((r) => r[j]!)) - last[j]!));
  const bwt = earlier.length ? mean(earlier.map((j) => last[j]! - A[j]![j]!)) : 0;
  return { finalAverageAccuracy, averageIncrementalAccuracy, forgetting, legacyForgetting, bwt };
}

/**
 * Accuracy over the images of several held-out sets together, from [task, images, correct]
 * counts: pooled over images (a task with more held-out images weighs more), as accuracy on the
 * seen classes is; undefined when there are no images.
 */
export function pooledAccuracy(counts: readonly (readonly [number, number, number])[]): number | undefined {
  let images = 0;
  let correct = 0;
  for (const [, n, c] of counts) {
    images += n;
    correct += c;
  }
  return images > 0 ? correct / images : undefined;
}

/** The predicted class of row `i` of [N, k] probabilities (row-major): the first largest column. */
export function predictedClass(probs: Float32Array, i: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
  return best;
}

export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}
