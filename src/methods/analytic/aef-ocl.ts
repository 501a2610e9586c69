/**
 * AEF-OCL (Zhuang et al., "Online Analytic Exemplar-Free Continual Learning with Large Models for
 * Imbalanced Autonomous Driving Task", 2024; code: ZHUANGHP/Analytic-continual-learning,
 * `AEFOCL.py`): ACIL (./acil.ts) plus a balancing step against class imbalance.
 *
 * Besides the ridge, the method keeps per class a float64 count, sum and sum of squares of the
 * backbone features (before the buffer layer; ./feature-stats.ts). To balance, it draws
 * max_count - count_c pseudo-features for every seen class c from N(mean_c, diag(std_c^2))
 * (Bessel-corrected std, 0 for a class seen once), passes them through the buffer layer and fits
 * them to the ridge, so every class weighs as much as the largest. The real-data state (R, W) is
 * backed up first and restored before the next real fit, so the real-data ridge stays exactly
 * ACIL's, and pseudo-features never accumulate.
 *
 * Assumptions and choices:
 * - `balance: 'cached'` (default, as the authors' code, which balances once before evaluating
 *   and restores at the start of the next fit): balance after each adapt and predict from the
 *   balanced ridge until the next adapt, whose first step restores the real state.
 *   `balance: 'per-batch'`: keep the real state and balance a copy before every prediction and
 *   held-out evaluation, then restore it (cost per call: two copies of R and the pseudo-feature
 *   fits; memory: no backup held between calls).
 * - The pseudo-features of a balancing are drawn from `Rng.derive(seed, 'aef-ocl', 'pseudo', n)`
 *   with n = labelled samples fitted so far. The balanced classifier is then a function of the
 *   seed and the data seen, not of how the stream was batched (the analytic methods' defining
 *   property carries over to AEF-OCL's predictions), both modes predict the same, evaluate is
 *   repeatable and changes nothing, and `reset` replays the same draws.
 * - Classes are balanced in order of first appearance; within a class the draws go row by row.
 * - When every seen class has the same count no pseudo-feature is drawn (and no backup made):
 *   the predictions are then exactly ACIL's.
 * - The authors' `noise` multiplier of the std is fixed at their default 1. gamma defaults to
 *   0.1 like ACIL (the authors' AEF-OCL class defaults to 1e-3; their runner passes its own).
 * - The diagnostic `pseudoFeatures` reports how many pseudo-features the last balancing fitted.
 */
import { z } from 'zod';
import { Rng } from '../../util/rng.js';
import { registerMethod } from '../registry.js';
import { AcilMethod } from './acil.js';
import { type AnalyticBatch, type ScoreCall, ANALYTIC_DEFAULTS, analyticOptionShape } from './analytic-method.js';
import { FeatureStats } from './feature-stats.js';
import type { Matrix, RidgeSnapshot } from './recursive-ridge.js';

export const aefOclOptions = z.strictObject({
  ...analyticOptionShape,
  /** 'cached': balance once after each adapt (the authors' flow); 'per-batch': balance a copy before every prediction. */
  balance: z.enum(['cached', 'per-batch']).default('cached'),
});
export type AefOclOptions = z.output<typeof aefOclOptions>;

/** Pseudo-feature rows generated and fitted at a time (bounds the memory of a large deficit). */
const PSEUDO_CHUNK = 256;

export class AefOclMethod extends AcilMethod<AefOclOptions> {
  private stats!: FeatureStats;
  /** The real-data state while the ridge holds the balanced one ('cached' mode). */
  private backup: RidgeSnapshot | undefined;
  /** Labelled samples fitted so far (keys the pseudo-feature draws). */
  private samples = 0;
  private lastCounts = new Map<number, number>();

  constructor(options: AefOclOptions) {
    super(options, 'aef-ocl');
  }

  /** The per-class backbone feature statistics. */
  get statistics(): FeatureStats {
    return this.stats;
  }

  /** Pseudo-features per dataset class of the last balancing (empty before the first). */
  get pseudoCounts(): ReadonlyMap<number, number> {
    return this.lastCounts;
  }

  /** A copy of the real-data ridge state (R, W): what ACIL would hold after the same data. */
  realState(): RidgeSnapshot {
    return this.backup ? { ...this.backup, R: this.backup.R.slice(), W: this.backup.W.slice() } : this.ridgeModel.snapshot();
  }

  protected override fitBatch(batch: AnalyticBatch): void {
    const spare = this.backup;
    if (spare) {
      this.ridgeModel.restore(spare);
      this.backup = undefined;
    }
    super.fitBatch(batch);
    this.stats.add(batch.features, batch.labels);
    this.samples += batch.labels.length;
    if (this.options.balance === 'cached') {
      const real = this.maxDeficit() > 0 ? this.ridgeModel.snapshot(spare) : undefined;
      this.diagnose('pseudoFeatures', this.fitPseudoFeatures(true));
      this.backup = real;
    }
  }

  protected override scores(features: Matrix, call: ScoreCall): Matrix {
    if (this.options.balance === 'cached') return super.scores(features, call);
    // Evaluate records nothing (it changes nothing, diagnostics included).
    const record = call === 'predict';
    // Balanced classes fit nothing: no copy of R is needed then.
    const real = this.maxDeficit() > 0 ? this.ridgeModel.snapshot() : undefined;
    try {
      const total = this.fitPseudoFeatures(record);
      if (record) this.diagnose('pseudoFeatures', total);
      return super.scores(features, call);
    } finally {
      if (real) this.ridgeModel.restore(real);
    }
  }

  protected override clearState(): void {
    super.clearState();
    this.stats ??= new FeatureStats(this.network.featureDim);
    this.stats.clear();
    this.backup = undefined;
    this.samples = 0;
    this.lastCounts = new Map();
  }

  protected override ridgeBytes(): number {
    const b = this.backup;
    return super.ridgeBytes() + (b ? 8 * (b.R.length + b.W.length) : 0);
  }

  protected override statisticsBytes(): number {
    return this.stats.bytes();
  }

  private maxDeficit(): number {
    let most = 0;
    for (const n of this.stats.deficits().values()) most = Math.max(most, n);
    return most;
  }

  /**
   * Fits max_count - count_c pseudo-features of every seen class to the ridge (in place); returns
   * how many. `record` = remember the per-class counts (not for evaluate, which changes nothing).
   */
  private fitPseudoFeatures(record: boolean): number {
    const rng = Rng.derive(this.ctx.seed, 'aef-ocl', 'pseudo', this.samples);
    const deficits = this.stats.deficits();
    const seen = this.seenClasses;
    const counts = new Map<number, number>();
    let total = 0;
    for (const c of seen) {
      const missing = deficits.get(c) ?? 0;
      counts.set(c, missing);
      const column = this.columnOfClass(c)!;
      for (let done = 0; done < missing; done += PSEUDO_CHUNK) {
        const n = Math.min(PSEUDO_CHUNK, missing - done);
        const f = this.stats.sample(c, n, rng);
        const targets = new Float64Array(n * seen.length);
        for (let i = 0; i < n; i++) targets[i * seen.length + column] = 1;
        this.ridgeModel.fit(this.projection.apply(f), { rows: n, cols: seen.length, data: targets });
      }
      total += missing;
    }
    if (record) this.lastCounts = counts;
    return total;
  }
}

registerMethod({
  name: 'aef-ocl',
  description: 'AEF-OCL: ACIL plus class balancing with Gaussian pseudo-features of each class\'s backbone features (real-data ridge backed up and restored)',
  usesLabels: true,
  options: aefOclOptions,
  // The AEF-OCL paper evaluates on SODA10M, none of our datasets: ACIL's rows.
  defaults: ANALYTIC_DEFAULTS,
  create: (o) => new AefOclMethod(o),
});
