/**
 * Cholesky factorisation and solves for the small symmetric positive definite systems of the
 * recursive ridge update (`I_b + X R X^T`, b = rows of a batch). Solving with the factor instead
 * of forming an inverse is both cheaper (one factorisation, then two triangular sweeps per
 * right-hand side) and better conditioned. Matrices are row-major Float64Arrays.
 */
import { CttaError } from '../../errors.js';

/**
 * The lower-triangular L with L L^T = A, for A (n x n, row-major) symmetric positive definite.
 * Only the lower triangle of A is read. Throws when a pivot is not positive (A is not SPD, or
 * holds NaN), which for the ridge update means its state has been corrupted.
 */
export function choleskyFactor(a: Float64Array, n: number): Float64Array {
  if (a.length !== n * n) throw new CttaError(`choleskyFactor: a ${n} x ${n} matrix needs ${n * n} values, got ${a.length}`);
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let s = a[rj + j];
    for (let k = 0; k < j; k++) s -= l[rj + k] * l[rj + k];
    // `!(s > 0)` also catches NaN, which `s <= 0` would let through.
    if (!(s > 0)) {
      throw new CttaError(`the ${n} x ${n} system of the ridge update is not positive definite (pivot ${j} is ${s})`, {
        fix: 'the features or targets hold huge or non-finite values, or gamma is too small for float64: check the inputs or raise gamma',
      });
    }
    const d = Math.sqrt(s);
    l[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let t = a[ri + j];
      for (let k = 0; k < j; k++) t -= l[ri + k] * l[rj + k];
      l[ri + j] = t / d;
    }
  }
  return l;
}

/**
 * Overwrites B (n x m, row-major) with the solution X of L L^T X = B, for the factor L of
 * `choleskyFactor`. Each step updates whole rows of B, so the m right-hand sides are swept
 * together along contiguous memory.
 */
export function solveWithFactor(l: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  if (l.length !== n * n || b.length !== n * m) {
    throw new CttaError(`solveWithFactor: factor of ${l.length} values and right-hand side of ${b.length} do not fit n = ${n}, m = ${m}`);
  }
  // Forward sweep: L Y = B.
  for (let i = 0; i < n; i++) {
    const bi = i * m;
    for (let k = 0; k < i; k++) {
      const f = l[i * n + k];
      if (f === 0) continue;
      const bk = k * m;
      for (let q = 0; q < m; q++) b[bi + q] -= f * b[bk + q];
    }
    const inv = 1 / l[i * n + i];
    for (let q = 0; q < m; q++) b[bi + q] *= inv;
  }
  // Backward sweep: L^T X = Y (column i of L is read down its rows).
  for (let i = n - 1; i >= 0; i--) {
    const bi = i * m;
    for (let k = i + 1; k < n; k++) {
      const f = l[k * n + i];
      if (f === 0) continue;
      const bk = k * m;
      for (let q = 0; q < m; q++) b[bi + q] -= f * b[bk + q];
    }
    const inv = 1 / l[i * n + i];
    for (let q = 0; q < m; q++) b[bi + q] *= inv;
  }
  return b;
}

/** X with A X = B, for A (n x n) symmetric positive definite and B (n x m); neither is changed. */
export function choleskySolve(a: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  return solveWithFactor(choleskyFactor(a, n), n, Float64Array.from(b), m);
}
