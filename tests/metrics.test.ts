import { describe, expect, it } from 'vitest';
import { CalibrationBins, matrixMetrics } from '../src/eval/metrics.js';

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
  });

  it('a single task has no forgetting', () => {
    expect(matrixMetrics([[0.7]])).toEqual({ finalAverageAccuracy: 0.7, averageIncrementalAccuracy: 0.7, forgetting: 0, bwt: 0 });
  });
});
