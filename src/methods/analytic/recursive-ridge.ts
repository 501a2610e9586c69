/**
 * Recursive least squares for ridge regression: the classifier of the analytic continual-learning
 * methods (ACIL, DS-AL, AEF-OCL; Zhuang et al., ZHUANGHP/Analytic-continual-learning, the
 * `RecursiveLinear` there).
 *
 * State: R = (sum X^T X + gamma I)^-1 (d x d, starts at I / gamma) and W = R sum X^T Y (d x c,
 * starts with no columns). Per batch X (b x d), Y (b x c):
 *   K = (I_b + X R X^T)^-1                 (solved by Cholesky, never formed)
 *   R <- R - R X^T K X R                   (Woodbury)
 *   W <- W + R X^T (Y - X W)               (with the updated R)
 * so W always equals the joint ridge solution over everything fitted so far, whatever the
 * split and order of the rows. When Y has more columns than W, W first grows zero columns: that
 * is exact, because a class never seen has had target 0 on every row fitted so far, and the ridge
 * solution of all-zero targets is a zero column.
 *
 * Everything is float64 in plain loops (no tf): the update subtracts nearly equal quantities,
 * and float32 would lose the exactness the methods rest on.
 *
 * Matrices in and out are row-major: element (i, j) of a `Matrix` is `data[i * cols + j]`.
 * Inputs may also be given as arrays of rows (`number[][]`).
 */
import { CttaError } from '../../errors.js';
import { choleskyFactor, solveWithFactor } from './cholesky.js';

/** A row-major float64 matrix: element (i, j) is `data[i * cols + j]`. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

/** A matrix as the ridge accepts it: a row-major `Matrix`, or an array of equally long rows. */
export type MatrixInput = Matrix | readonly (readonly number[])[];

/** A copy of the ridge's state (R and W), for `restore`. */
export interface RidgeSnapshot {
  readonly dim: number;
  readonly classes: number;
  readonly R: Float64Array;
  readonly W: Float64Array;
}

export interface RecursiveRidgeOptions {
  /** d: the width of the features (rows of W). */
  dim: number;
  /** The ridge penalty: R starts at I / gamma. */
  gamma: number;
}

/**
 * Rows fitted per recursive step. A batch of b rows costs a b x b factorisation (b^3 / 3) on top
 * of about 1.5 b d^2; splitting a tall batch into blocks keeps the first term small and, by the
 * invariant above, gives the same W and R (up to rounding).
 */
export const MAX_BLOCK_ROWS = 256;

/** `input` as a Matrix (validated; a `Matrix` is used as is, rows are copied). */
export function toMatrix(input: MatrixInput, name: string, colsIfEmpty: number): Matrix {
  if (Array.isArray(input)) {
    const rows = input as readonly (readonly number[])[];
    const cols = rows.length === 0 ? colsIfEmpty : rows[0].length;
    const data = new Float64Array(rows.length * cols);
    rows.forEach((row, i) => {
      if (!Array.isArray(row) || row.length !== cols) {
        throw new CttaError(`${name} row ${i} has ${Array.isArray(row) ? row.length : 'no'} values, row 0 has ${cols}`, { fix: `give ${name} as rows of equal length` });
      }
      data.set(row, i * cols);
    });
    return { rows: rows.length, cols, data };
  }
  const m = input as Matrix;
  if (m === null || typeof m !== 'object' || !(m.data instanceof Float64Array)) {
    throw new CttaError(`${name} is neither an array of rows nor { rows, cols, data: Float64Array }`, { fix: `pass ${name} as number[][] or a row-major Float64Array with its shape` });
  }
  if (!Number.isInteger(m.rows) || !Number.isInteger(m.cols) || m.rows < 0 || m.cols < 0 || m.data.length !== m.rows * m.cols) {
    throw new CttaError(`${name} claims ${m.rows} x ${m.cols} but holds ${m.data.length} values`, { fix: `data must hold rows * cols values, row-major` });
  }
  return m;
}

function assertFinite(m: Matrix, name: string): void {
  const d = m.data;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) {
      const row = Math.floor(i / m.cols);
      throw new CttaError(`${name} holds ${d[i]} at row ${row}, column ${i - row * m.cols}`, { fix: 'the ridge fits finite values only: check the features and targets' });
    }
  }
}

export class RecursiveRidge {
  readonly dim: number;
  readonly gamma: number;
  /** R, d x d, kept exactly symmetric. */
  private readonly R: Float64Array;
  /** W, d x c. */
  private W: Float64Array;
  private c = 0;

  constructor({ dim, gamma }: RecursiveRidgeOptions) {
    if (!Number.isInteger(dim) || dim < 1) throw new CttaError(`ridge dimension ${dim} is not a positive integer`);
    if (!(gamma > 0) || !Number.isFinite(gamma)) throw new CttaError(`ridge gamma ${gamma} is not a positive number`, { fix: 'set gamma > 0 (0.1 is the authors\' value)' });
    this.dim = dim;
    this.gamma = gamma;
    this.R = new Float64Array(dim * dim);
    this.W = new Float64Array(0);
    this.reset();
  }

  /** Columns of W: the number of targets (classes) fitted so far. */
  get classes(): number {
    return this.c;
  }

  /** A copy of W (d x c). */
  get weight(): Matrix {
    return { rows: this.dim, cols: this.c, data: this.W.slice() };
  }

  /** A copy of R = (sum X^T X + gamma I)^-1 (d x d). */
  get inverse(): Matrix {
    return { rows: this.dim, cols: this.dim, data: this.R.slice() };
  }

  /** Back to R = I / gamma and a W without columns. */
  reset(): void {
    const d = this.dim;
    this.R.fill(0);
    for (let i = 0; i < d; i++) this.R[i * d + i] = 1 / this.gamma;
    this.W = new Float64Array(0);
    this.c = 0;
  }

  /**
   * Fits rows X (b x d) to targets Y (b x c'). c' may exceed the columns fitted so far (new
   * classes: W grows zero columns) but not fall short of them. Y is one-hot for classification;
   * any finite targets are accepted (DS-AL's compensation stream fits residuals).
   */
  fit(x: MatrixInput, y: MatrixInput): void {
    const X = toMatrix(x, 'X', this.dim);
    const Y = toMatrix(y, 'Y', this.c);
    if (X.cols !== this.dim) throw new CttaError(`X has ${X.cols} columns but the ridge has dimension ${this.dim}`, { fix: 'fit features of the width the ridge was made for' });
    if (Y.rows !== X.rows) throw new CttaError(`X has ${X.rows} rows but Y has ${Y.rows}`, { fix: 'give one target row per feature row' });
    if (Y.cols < this.c) {
      throw new CttaError(`Y has ${Y.cols} columns but ${this.c} classes have been fitted`, { fix: 'give targets over every class seen so far (columns may only grow)' });
    }
    assertFinite(X, 'X');
    assertFinite(Y, 'Y');
    if (Y.cols > this.c) this.grow(Y.cols);
    for (let r0 = 0; r0 < X.rows; r0 += MAX_BLOCK_ROWS) this.fitBlock(X, Y, r0, Math.min(X.rows, r0 + MAX_BLOCK_ROWS));
  }

  /** Scores X W (b x c). */
  predict(x: MatrixInput): Matrix {
    const X = toMatrix(x, 'X', this.dim);
    if (X.cols !== this.dim) throw new CttaError(`X has ${X.cols} columns but the ridge has dimension ${this.dim}`, { fix: 'predict from features of the width the ridge was made for' });
    assertFinite(X, 'X');
    return { rows: X.rows, cols: this.c, data: multiplySparseRows(X.data, X.rows, this.dim, this.W, this.c) };
  }

  /**
   * Copies of R and W. `reuse`: a snapshot of this ridge that is no longer needed, whose R array
   * is overwritten instead of allocating 8 d^2 bytes anew (512 MiB at d = 8192).
   */
  snapshot(reuse?: RidgeSnapshot): RidgeSnapshot {
    if (reuse && reuse.R.length === this.R.length) {
      reuse.R.set(this.R);
      return { dim: this.dim, classes: this.c, R: reuse.R, W: this.W.slice() };
    }
    return { dim: this.dim, classes: this.c, R: this.R.slice(), W: this.W.slice() };
  }

  /** Sets R and W to a snapshot's (copied, so a snapshot can be restored again). */
  restore(s: RidgeSnapshot): void {
    if (s.dim !== this.dim || s.R.length !== this.dim * this.dim || s.W.length !== this.dim * s.classes) {
      throw new CttaError(`the ridge snapshot (dimension ${s.dim}, ${s.classes} classes) does not fit this ridge (dimension ${this.dim})`);
    }
    this.R.set(s.R);
    this.W = s.W.slice();
    this.c = s.classes;
  }

  /** Bytes of R (8 d^2) and W (8 d c). */
  stateBytes(): number {
    return 8 * this.dim * this.dim + 8 * this.dim * this.c;
  }

  /** Adds zero columns to W up to `cols`. */
  private grow(cols: number): void {
    const d = this.dim;
    const grown = new Float64Array(d * cols);
    for (let i = 0; i < d; i++) grown.set(this.W.subarray(i * this.c, (i + 1) * this.c), i * cols);
    this.W = grown;
    this.c = cols;
  }

  /** One recursive step on rows [r0, r1) of X and Y (Y has exactly c columns here). */
  private fitBlock(X: Matrix, Y: Matrix, r0: number, r1: number): void {
    const d = this.dim;
    const c = this.c;
    const b = r1 - r0;
    const R = this.R;
    const x = X.data.subarray(r0 * d, r1 * d);
    // XR = X R (b x d) = (R X^T)^T, as R is symmetric.
    const XR = multiplySparseRows(x, b, d, R, d);
    // S = I + X R X^T, built as one triangle and mirrored so it is exactly symmetric.
    const S = new Float64Array(b * b);
    for (let i = 0; i < b; i++) {
      for (let j = 0; j <= i; j++) {
        let s = 0;
        const oi = i * d;
        const oj = j * d;
        for (let k = 0; k < d; k++) s += XR[oi + k] * x[oj + k];
        S[i * b + j] = s;
        S[j * b + i] = s;
      }
      S[i * b + i] += 1;
    }
    // Z = K X R (b x d): the one solve of the step.
    const Z = solveWithFactor(choleskyFactor(S, b), b, XR.slice(), d);
    // Residual against the old W (b x c): needed before W changes.
    const E = Y.data.slice(r0 * c, r1 * c);
    if (c > 0) {
      const XW = multiplySparseRows(x, b, d, this.W, c);
      for (let i = 0; i < E.length; i++) E[i] -= XW[i];
    }
    // R <- R - (XR)^T Z on the upper triangle, then mirrored: the product is symmetric in exact
    // arithmetic only, and an R that drifts from symmetry drifts from the ridge solution.
    const nz = new Int32Array(b);
    for (let p = 0; p < d; p++) {
      let count = 0;
      for (let i = 0; i < b; i++) if (XR[i * d + p] !== 0) nz[count++] = i;
      subtractRows(R, p * d, p, d, XR, p, Z, nz, count);
    }
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) R[q * d + p] = R[p * d + q];
    // W <- W + R_new X^T E. R_new X^T = R X^T - R X^T K (S - I) = R X^T K = Z^T, so the gain is
    // already at hand and the new R need not be multiplied by X again.
    if (c > 0) {
      const W = this.W;
      for (let i = 0; i < b; i++) {
        const zi = i * d;
        const ei = i * c;
        for (let p = 0; p < d; p++) {
          const g = Z[zi + p];
          if (g === 0) continue;
          const wp = p * c;
          for (let j = 0; j < c; j++) W[wp + j] += g * E[ei + j];
        }
      }
    }
  }
}

/**
 * A (n x k) times B (k x m), both row-major, skipping zero entries of A: the ReLU features the
 * ridge mostly sees are about half zeros, and a skipped term adds exactly 0.
 */
export function multiplySparseRows(a: Float64Array, n: number, k: number, b: Float64Array, m: number): Float64Array {
  const out = new Float64Array(n * m);
  const nz = new Int32Array(k);
  for (let i = 0; i < n; i++) {
    const ai = i * k;
    let count = 0;
    for (let t = 0; t < k; t++) if (a[ai + t] !== 0) nz[count++] = t;
    // out_i += sum_t a_it b_t, four rows of b per pass: a quarter of the loads and stores of out.
    const oi = i * m;
    let u = 0;
    for (; u + 4 <= count; u += 4) {
      const [t0, t1, t2, t3] = [nz[u], nz[u + 1], nz[u + 2], nz[u + 3]];
      const [v0, v1, v2, v3] = [a[ai + t0], a[ai + t1], a[ai + t2], a[ai + t3]];
      const [b0, b1, b2, b3] = [t0 * m, t1 * m, t2 * m, t3 * m];
      for (let q = 0; q < m; q++) out[oi + q] += v0 * b[b0 + q] + v1 * b[b1 + q] + v2 * b[b2 + q] + v3 * b[b3 + q];
    }
    for (; u < count; u++) {
      const t = nz[u];
      const v = a[ai + t];
      const bt = t * m;
      for (let q = 0; q < m; q++) out[oi + q] += v * b[bt + q];
    }
  }
  return out;
}

/**
 * target[start + q] -= sum over the listed rows i of coef[i * stride + col] * rows[i * stride + q],
 * for q in [from, stride): one row of R's update (its upper part), four rows of Z per pass.
 */
function subtractRows(target: Float64Array, start: number, from: number, stride: number, coef: Float64Array, col: number, rows: Float64Array, nz: Int32Array, count: number): void {
  let u = 0;
  for (; u + 4 <= count; u += 4) {
    const [o0, o1, o2, o3] = [nz[u] * stride, nz[u + 1] * stride, nz[u + 2] * stride, nz[u + 3] * stride];
    const [c0, c1, c2, c3] = [coef[o0 + col], coef[o1 + col], coef[o2 + col], coef[o3 + col]];
    for (let q = from; q < stride; q++) target[start + q] -= c0 * rows[o0 + q] + c1 * rows[o1 + q] + c2 * rows[o2 + q] + c3 * rows[o3 + q];
  }
  for (; u < count; u++) {
    const o = nz[u] * stride;
    const c = coef[o + col];
    for (let q = from; q < stride; q++) target[start + q] -= c * rows[o + q];
  }
}
