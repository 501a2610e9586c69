/**
 * AEF-OCL's per-class statistics of the backbone features (before the buffer layer): count, sum
 * and sum of squares in float64, and the Gaussian pseudo-features drawn from them to balance the
 * classes. Each class is modelled as N(mean_c, diag(std_c^2)) with the Bessel-corrected standard
 * deviation, as the authors' `proto_std` does (their E[X^2] - E[X]^2, times n / (n - 1)).
 */
import { CttaError } from '../../errors.js';
import type { Rng } from '../../util/rng.js';
import type { Matrix } from './recursive-ridge.js';

interface ClassMoments {
  count: number;
  sum: Float64Array;
  sumSq: Float64Array;
}

export class FeatureStats {
  readonly dim: number;
  private readonly moments = new Map<number, ClassMoments>();

  constructor(dim: number) {
    if (!Number.isInteger(dim) || dim < 1) throw new CttaError(`feature statistics need a positive width, got ${dim}`);
    this.dim = dim;
  }

  /** Adds rows of `features` (n x dim) with their classes. */
  add(features: Matrix, labels: ArrayLike<number>): void {
    if (features.cols !== this.dim || labels.length !== features.rows) {
      throw new CttaError(`feature statistics of width ${this.dim} got ${features.rows} x ${features.cols} features and ${labels.length} labels`);
    }
    const d = this.dim;
    for (let i = 0; i < features.rows; i++) {
      const c = labels[i];
      let m = this.moments.get(c);
      if (!m) {
        m = { count: 0, sum: new Float64Array(d), sumSq: new Float64Array(d) };
        this.moments.set(c, m);
      }
      m.count++;
      const o = i * d;
      for (let k = 0; k < d; k++) {
        const v = features.data[o + k];
        m.sum[k] += v;
        m.sumSq[k] += v * v;
      }
    }
  }

  /** The classes with statistics, ascending. */
  classes(): number[] {
    return [...this.moments.keys()].sort((a, b) => a - b);
  }

  count(c: number): number {
    return this.moments.get(c)?.count ?? 0;
  }

  mean(c: number): Float64Array {
    const m = this.get(c);
    return m.sum.map((s) => s / m.count);
  }

  /**
   * Bessel-corrected per-feature standard deviation; 0 for a class seen once. The variance comes
   * from the sums, so rounding can leave it slightly negative for a constant feature: that is
   * clamped to 0.
   */
  std(c: number): Float64Array {
    const m = this.get(c);
    const n = m.count;
    if (n < 2) return new Float64Array(this.dim);
    return m.sumSq.map((sq, k) => Math.sqrt(Math.max(0, (sq - (m.sum[k] * m.sum[k]) / n) / (n - 1))));
  }

  /** Per class, how many pseudo-features bring it to the largest class's count: max_count - count_c. */
  deficits(): Map<number, number> {
    let most = 0;
    for (const m of this.moments.values()) most = Math.max(most, m.count);
    return new Map(this.classes().map((c) => [c, most - this.count(c)]));
  }

  /**
   * `n` pseudo-features of class `c` (n x dim), drawn row by row from N(mean_c, std_c^2) with
   * `rng`, so drawing a class's pseudo-features in parts gives the same values as all at once.
   */
  sample(c: number, n: number, rng: Rng): Matrix {
    const mean = this.mean(c);
    const std = this.std(c);
    const d = this.dim;
    const data = new Float64Array(n * d);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) data[i * d + k] = rng.normal(mean[k], std[k]);
    return { rows: n, cols: d, data };
  }

  /** Bytes held: per class a float64 count, sum and sum of squares. */
  bytes(): number {
    return this.moments.size * 8 * (1 + 2 * this.dim);
  }

  clear(): void {
    this.moments.clear();
  }

  private get(c: number): ClassMoments {
    const m = this.moments.get(c);
    if (!m) throw new CttaError(`no feature statistics for class ${c}`);
    return m;
  }
}
