import { describe, expect, it } from 'vitest';
import { CalibrationBins, matrixMetrics, pooledAccuracy } from '../src/eval/metrics.js';

describe('metrics (hand-computed examples)', () => {
  it('ECE: weighted gap between accuracy and confidence per bin', () => {
    const bins = new CalibrationBins(10);
    // bin (0.9,1.0]: confidences 0.95, 0.95, correct 1 of 2 -> |0.5 - 0.95| = 0.45, weight 2/4
    bins.add(0.95, true);
    bins.add(0.95, false);
    // bin (0.5,0.6]: 0.55, 0.55 both correct -> |1 - 0.55| = 0.45, weight 2/4
    bins.add(0.55, true);
    bins.add(0.55, true);
    expect(bins.ece()).toBeCloseTo(0.45, 12);
    const perfect = new CalibrationBins(10);
    perfect.add(1, true);
    perfect.add(1, true);
    expect(perfect.ece()).toBe(0);
  });

  it('ECE puts a confidence exactly on a bin edge in the lower bin', () => {
    const bins = new CalibrationBins(10);
    bins.add(0.5, true); // bin (0.4, 0.5]
    expect(bins.count[4]).toBe(1);
  });

  it('accuracy matrix: final average, average incremental accuracy, forgetting, BWT', () => {
    const A = [
      [0.9, 0.1, 0.0],
      [0.6, 0.8, 0.1],
      [0.5, 0.7, 0.9],
    ];
    const m = matrixMetrics(A);
    expect(m.finalAverageAccuracy).toBeCloseTo((0.5 + 0.7 + 0.9) / 3, 12);
    expect(m.averageIncrementalAccuracy).toBeCloseTo((0.9 + (0.6 + 0.8) / 2 + (0.5 + 0.7 + 0.9) / 3) / 3, 12);
    // forgetting: task 0: max(0.9, 0.6) - 0.5 = 0.4; task 1: max(0.1, 0.8) - 0.7 = 0.1 -> 0.25
    expect(m.forgetting).toBeCloseTo(0.25, 12);
    // BWT: task 0: 0.5 - 0.9 = -0.4; task 1: 0.7 - 0.8 = -0.1 -> -0.25
    expect(m.bwt).toBeCloseTo(-0.25, 12);
    // legacy: best over all three rows minus final, over all three tasks: task 0: 0.9 - 0.5,
    // task 1: 0.8 - 0.7, task 2: 0.9 - 0.9 -> 0.5 / 3, which is (T-1)/T of the 0.25 above
    expect(m.legacyForgetting).toBeCloseTo(0.5 / 3, 12);
    expect(m.legacyForgetting).toBeCloseTo((2 / 3) * m.forgetting, 12);
  });

  it('legacy forgetting: the final row counts in the best, so negative forgetting becomes 0; the last task counts', () => {
    // Task 0 improves (0.5 -> 0.6); task 1 scored 0.3 before it was trained on and 0.2 after.
    const m = matrixMetrics([
      [0.5, 0.3],
      [0.6, 0.2],
    ]);
    expect(m.forgetting).toBeCloseTo(0.5 - 0.6, 12); // ours keeps the sign
    expect(m.bwt).toBeCloseTo(0.6 - 0.5, 12);
    // legacy: task 0: max(0.5, 0.6) - 0.6 = 0; task 1: max(0.3, 0.2) - 0.2 = 0.1 -> 0.05
    expect(m.legacyForgetting).toBeCloseTo(0.05, 12);
    // 4 tasks, forgetting only on task 1 (0.8 -> 0.4): ours 0.4 / 3, legacy 0.4 / 4.
    const four = matrixMetrics([
      [0.9, 0.0, 0.0, 0.0],
      [0.9, 0.8, 0.0, 0.0],
      [0.9, 0.6, 0.7, 0.0],
      [0.9, 0.4, 0.7, 0.6],
    ]);
    expect(four.forgetting).toBeCloseTo(0.4 / 3, 12);
    expect(four.legacyForgetting).toBeCloseTo(0.4 / 4, 12);
    expect(four.finalAverageAccuracy).toBeCloseTo((0.9 + 0.4 + 0.7 + 0.6) / 4, 12);
    expect(four.averageIncrementalAccuracy).toBeCloseTo((0.9 + 1.7 / 2 + 2.2 / 3 + 2.6 / 4) / 4, 12);
  });

  it('a single task has no forgetting', () => {
    expect(matrixMetrics([[0.7]])).toEqual({ finalAverageAccuracy: 0.7, averageIncrementalAccuracy: 0.7, forgetting: 0, legacyForgetting: 0, bwt: 0 });
  });

  it('pooled accuracy weighs tasks by their held-out images, not equally', () => {
    // 9 of 10 and 3 of 30: 12 / 40 = 0.3 (the mean of the two accuracies would be 0.5).
    expect(pooledAccuracy([[0, 10, 9], [1, 30, 3]])).toBeCloseTo(0.3, 12);
    expect(pooledAccuracy([[2, 4, 4]])).toBe(1);
    expect(pooledAccuracy([])).toBeUndefined();
    expect(pooledAccuracy([[0, 0, 0]])).toBeUndefined();
  });
});
