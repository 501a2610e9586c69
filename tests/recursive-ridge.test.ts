/**
 * The recursive ridge of the analytic methods (src/methods/analytic/): its defining invariant -
 * after any split and order of the data, W is the joint ridge solution
 * (X^T X + gamma I)^-1 X^T Y and R = (X^T X + gamma I)^-1 - checked against a direct solve by
 * Gaussian elimination written here, independent of the code under test. Also the Cholesky
 * solve, the buffer layer and AEF-OCL's feature statistics.
 */
import { describe, expect, it } from 'vitest';
import { BufferLayer, activate } from '../src/methods/analytic/buffer-layer.js';
import { choleskyFactor, choleskySolve } from '../src/methods/analytic/cholesky.js';
import { FeatureStats } from '../src/methods/analytic/feature-stats.js';
import { MAX_BLOCK_ROWS, type Matrix, RecursiveRidge } from '../src/methods/analytic/recursive-ridge.js';
import { Rng } from '../src/util/rng.js';
import { expectCttaError, relativeError } from './helpers.js';

/** A X = B by Gaussian elimination with partial pivoting (A n x n, B n x m, row-major; copies). */
function gaussSolve(a: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  const A = Float64Array.from(a);
  const B = Float64Array.from(b);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(A[r * n + col]) > Math.abs(A[pivot * n + col])) pivot = r;
    if (pivot !== col) {
      for (let k = 0; k < n; k++) [A[col * n + k], A[pivot * n + k]] = [A[pivot * n + k], A[col * n + k]];
      for (let k = 0; k < m; k++) [B[col * m + k], B[pivot * m + k]] = [B[pivot * m + k], B[col * m + k]];
    }
    for (let r = col + 1; r < n; r++) {
      const f = A[r * n + col] / A[col * n + col];
      if (f === 0) continue;
      for (let k = col; k < n; k++) A[r * n + k] -= f * A[col * n + k];
      for (let k = 0; k < m; k++) B[r * m + k] -= f * B[col * m + k];
    }
  }
  const X = new Float64Array(n * m);
  for (let r = n - 1; r >= 0; r--) {
    for (let k = 0; k < m; k++) {
      let s = B[r * m + k];
      for (let j = r + 1; j < n; j++) s -= A[r * n + j] * X[j * m + k];
      X[r * m + k] = s / A[r * n + r];
    }
  }
  return X;
}

/** The joint ridge solution and inverse over rows X (n x d) and targets Y (n x c). */
function jointRidge(x: number[][], y: number[][], d: number, c: number, gamma: number): { W: Float64Array; R: Float64Array } {
  const G = new Float64Array(d * d);
  const XtY = new Float64Array(d * c);
  x.forEach((row, i) => {
    for (let p = 0; p < d; p++) {
      for (let q = 0; q < d; q++) G[p * d + q] += row[p] * row[q];
      for (let j = 0; j < c; j++) XtY[p * c + j] += row[p] * (y[i][j] ?? 0);
    }
  });
  for (let p = 0; p < d; p++) G[p * d + p] += gamma;
  const I = new Float64Array(d * d);
  for (let p = 0; p < d; p++) I[p * d + p] = 1;
  return { W: gaussSolve(G, d, XtY, c), R: gaussSolve(G, d, I, d) };
}


function isSymmetric(m: Matrix): boolean {
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < i; j++) if (!Object.is(m.data[i * m.cols + j], m.data[j * m.cols + i])) return false;
  return true;
}

/** n rows of d features, ReLU-like (about a third exactly 0), with class labels in [0, classes). */
function dataset(rng: Rng, n: number, d: number, classes: number): { x: number[][]; labels: number[] } {
  const x: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = rng.int(0, classes - 1);
    labels.push(label);
    // Each class has its own mean so the targets are learnable; the spread keeps X^T X well conditioned.
    x.push(Array.from({ length: d }, (_, k) => Math.max(0, rng.normal(((label + k) % 3) - 0.5, 1))));
  }
  return { x, labels };
}

/** Batch sizes summing to n: random, with 1 and a batch larger than d forced in when possible. */
function randomSplit(rng: Rng, n: number, d: number): number[] {
  const sizes: number[] = [];
  let left = n;
  const forced = [1, d + 1 + rng.int(0, 4)];
  while (left > 0) {
    const want = forced.length > 0 && rng.float() < 0.5 ? forced.shift()! : rng.int(1, Math.max(1, Math.floor(n / 3)));
    const b = Math.min(left, want);
    sizes.push(b);
    left -= b;
  }
  return sizes;
}

/**
 * Fits rows in the order of `order`, in batches of `sizes`, with targets one-hot over the classes
 * seen so far in first-appearance order (so columns grow mid-stream); returns the ridge and the
 * column order.
 */
function fitStream(x: number[][], labels: number[], order: ArrayLike<number>, sizes: number[], d: number, gamma: number, typed: boolean) {
  const ridge = new RecursiveRidge({ dim: d, gamma });
  const columns: number[] = [];
  let at = 0;
  for (const b of sizes) {
    const rows = Array.from({ length: b }, (_, i) => order[at + i]);
    at += b;
    for (const r of rows) if (!columns.includes(labels[r])) columns.push(labels[r]);
    const X = rows.map((r) => x[r]);
    const Y = rows.map((r) => columns.map((c) => (c === labels[r] ? 1 : 0)));
    if (typed) {
      ridge.fit({ rows: b, cols: d, data: Float64Array.from(X.flat()) }, { rows: b, cols: columns.length, data: Float64Array.from(Y.flat()) });
    } else {
      ridge.fit(X, Y);
    }
    expect(isSymmetric(ridge.inverse)).toBe(true);
  }
  return { ridge, columns };
}

describe('RecursiveRidge', () => {
  it('equals the joint ridge solution for any split and order (b = 1, b > d, classes appearing mid-stream)', () => {
    const rng = Rng.derive(1, 'ridge-property');
    const d = 6;
    const gamma = 0.1;
    const { x, labels } = dataset(rng, 48, d, 5);
    let worstW = 0;
    let worstR = 0;
    let sawMidStream = false;
    for (let trial = 0; trial < 60; trial++) {
      const order = rng.permutation(x.length);
      // Trial 0: the whole set at once (b = 48 > d); trial 1: one row at a time.
      const sizes = trial === 0 ? [x.length] : trial === 1 ? Array<number>(x.length).fill(1) : randomSplit(rng, x.length, d);
      const { ridge, columns } = fitStream(x, labels, order, sizes, d, gamma, trial % 2 === 0);
      if (sizes[0] < x.length && new Set(Array.from(order.slice(0, sizes[0]), (r) => labels[r])).size < columns.length) sawMidStream = true;
      const ordered = Array.from(order, (r) => x[r]);
      const targets = Array.from(order, (r) => columns.map((c) => (c === labels[r] ? 1 : 0)));
      const joint = jointRidge(ordered, targets, d, columns.length, gamma);
      const W = ridge.weight;
      expect([W.rows, W.cols]).toEqual([d, columns.length]);
      worstW = Math.max(worstW, relativeError(W.data, joint.W));
      worstR = Math.max(worstR, relativeError(ridge.inverse.data, joint.R));
    }
    expect(sawMidStream).toBe(true);
    expect(worstW).toBeLessThan(1e-9);
    expect(worstR).toBeLessThan(1e-9);
  });

  it('is exact at a realistic width, across its internal blocks of rows', () => {
    const rng = Rng.derive(2, 'ridge-wide');
    const d = 40;
    const { x, labels } = dataset(rng, MAX_BLOCK_ROWS + 60, d, 7);
    const order = Int32Array.from(x.keys());
    // One call with more rows than a block, then small batches on a second copy.
    const whole = fitStream(x, labels, order, [x.length], d, 0.1, true);
    const small = fitStream(x, labels, order, randomSplit(rng, x.length, d), d, 0.1, false);
    const joint = jointRidge(x, x.map((_, r) => whole.columns.map((c) => (c === labels[r] ? 1 : 0))), d, whole.columns.length, 0.1);
    expect(relativeError(whole.ridge.weight.data, joint.W)).toBeLessThan(1e-9);
    expect(relativeError(small.ridge.weight.data, joint.W)).toBeLessThan(1e-9);
    expect(relativeError(whole.ridge.inverse.data, joint.R)).toBeLessThan(1e-9);
  });

  it('starts at R = I / gamma with no columns, and predicts X W', () => {
    const ridge = new RecursiveRidge({ dim: 3, gamma: 0.5 });
    expect(Array.from(ridge.inverse.data)).toEqual([2, 0, 0, 0, 2, 0, 0, 0, 2]);
    expect(ridge.weight).toEqual({ rows: 3, cols: 0, data: new Float64Array(0) });
    expect(ridge.stateBytes()).toBe(8 * 9);
    ridge.fit([[1, 0, 2]], [[1, 0]]);
    expect(ridge.stateBytes()).toBe(8 * 9 + 8 * 3 * 2);
    const W = ridge.weight;
    const p = ridge.predict([
      [1, 2, 3],
      [0, 0, 0],
    ]);
    expect([p.rows, p.cols]).toEqual([2, 2]);
    for (let j = 0; j < 2; j++) expect(p.data[j]).toBeCloseTo(W.data[j] + 2 * W.data[2 + j] + 3 * W.data[4 + j], 14);
    expect(Array.from(p.data.slice(2))).toEqual([0, 0]);
    // An empty batch changes nothing.
    ridge.fit([], []);
    expect(ridge.weight).toEqual(W);
    ridge.reset();
    expect(ridge.classes).toBe(0);
    expect(Array.from(ridge.inverse.data)).toEqual([2, 0, 0, 0, 2, 0, 0, 0, 2]);
  });

  it('restores a snapshot bit for bit, and a snapshot is a copy', () => {
    const rng = Rng.derive(3, 'ridge-snapshot');
    const d = 8;
    const { x, labels } = dataset(rng, 30, d, 4);
    const { ridge } = fitStream(x, labels, Int32Array.from(x.keys()).slice(0, 15), [5, 5, 5], d, 0.1, true);
    const s = ridge.snapshot();
    const [R0, W0] = [ridge.inverse.data, ridge.weight.data];
    ridge.fit(x.slice(15, 25), x.slice(15, 25).map(() => [0, 1, 0, 0, 1]));
    expect(ridge.classes).toBe(5);
    expect(s.R).toEqual(R0);
    ridge.restore(s);
    expect(ridge.classes).toBe(W0.length / d);
    expect(new Uint8Array(ridge.inverse.data.buffer)).toEqual(new Uint8Array(R0.buffer));
    expect(new Uint8Array(ridge.weight.data.buffer)).toEqual(new Uint8Array(W0.buffer));
    // Restoring does not hand the snapshot's arrays to the ridge: fitting again leaves it intact.
    ridge.fit([x[29]], [[0, 0, 1, 0]]);
    ridge.restore(s);
    expect(new Uint8Array(ridge.weight.data.buffer)).toEqual(new Uint8Array(W0.buffer));
    // A snapshot into a spare one's R array equals a fresh snapshot.
    ridge.fit([x[28]], [[0, 1, 0, 0]]);
    const fresh = ridge.snapshot();
    const reused = ridge.snapshot(s);
    expect(reused.R).toBe(s.R);
    expect(reused).toEqual(fresh);
  });

  it('rejects bad shapes, fewer target columns than fitted classes, and non-finite values', async () => {
    const ridge = new RecursiveRidge({ dim: 3, gamma: 0.1 });
    await expectCttaError(() => ridge.fit([[1, 2]], [[1]]), /X has 2 columns but the ridge has dimension 3/);
    await expectCttaError(() => ridge.fit([[1, 2, 3]], [[1], [0]]), /X has 1 rows but Y has 2/);
    await expectCttaError(() => ridge.fit([[1, 2, 3], [1, 2]], [[1], [0]]), /X row 1 has 2 values, row 0 has 3/);
    await expectCttaError(() => ridge.fit({ rows: 2, cols: 3, data: new Float64Array(5) }, [[1], [0]]), /X claims 2 x 3 but holds 5 values/);
    await expectCttaError(() => ridge.fit({ rows: 1, cols: 3, data: [1, 2, 3] } as never, [[1]]), /neither an array of rows nor/);
    await expectCttaError(() => ridge.fit([[1, NaN, 3]], [[1]]), /X holds NaN at row 0, column 1/);
    await expectCttaError(() => ridge.fit([[1, 2, 3]], [[Infinity]]), /Y holds Infinity/);
    ridge.fit([[1, 2, 3]], [[1, 0]]);
    await expectCttaError(() => ridge.fit([[1, 2, 3]], [[1]]), /Y has 1 columns but 2 classes have been fitted/);
    await expectCttaError(() => ridge.predict([[1, 2]]), /X has 2 columns/);
    await expectCttaError(() => new RecursiveRidge({ dim: 0, gamma: 0.1 }), /dimension 0 is not a positive integer/);
    await expectCttaError(() => new RecursiveRidge({ dim: 2, gamma: 0 }), /gamma 0 is not a positive number/);
    await expectCttaError(() => ridge.restore(new RecursiveRidge({ dim: 2, gamma: 0.1 }).snapshot()), /does not fit this ridge/);
    // The failed calls changed nothing.
    expect(ridge.classes).toBe(2);
  });
});

describe('choleskySolve', () => {
  it('solves symmetric positive definite systems and rejects the others', async () => {
    const rng = Rng.derive(4, 'cholesky');
    const n = 7;
    const m = 3;
    const B = new Float64Array(n * n).map(() => rng.normal());
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) A[i * n + j] += B[i * n + k] * B[j * n + k];
    for (let i = 0; i < n; i++) A[i * n + i] += 1;
    const rhs = new Float64Array(n * m).map(() => rng.normal());
    const before = Float64Array.from(rhs);
    expect(relativeError(choleskySolve(A, n, rhs, m), gaussSolve(A, n, rhs, m))).toBeLessThan(1e-12);
    expect(rhs).toEqual(before);
    const L = choleskyFactor(A, n);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(L[i * n + j]).toBe(0);
    await expectCttaError(() => choleskyFactor(Float64Array.from([1, 2, 2, 1]), 2), /not positive definite \(pivot 1/);
    await expectCttaError(() => choleskyFactor(Float64Array.from([NaN]), 1), /not positive definite/);
  });
});

describe('BufferLayer', () => {
  it('draws a seeded U(-1/sqrt(in), 1/sqrt(in)) projection and applies its activation', () => {
    const make = (activation?: 'relu' | 'tanh' | 'identity') => new BufferLayer({ inputDim: 16, width: 500, rng: Rng.derive(5, 'buffer'), activation });
    const layer = make();
    const bound = 1 / 4;
    expect(layer.weight.length).toBe(16 * 500);
    expect(Math.max(...layer.weight)).toBeLessThanOrEqual(bound);
    expect(Math.min(...layer.weight)).toBeGreaterThanOrEqual(-bound);
    expect(Math.max(...layer.weight)).toBeGreaterThan(0.99 * bound);
    expect(layer.bytes()).toBe(8 * 16 * 500);
    expect(make().weight).toEqual(layer.weight);
    expect(new BufferLayer({ inputDim: 16, width: 500, rng: Rng.derive(6, 'buffer') }).weight).not.toEqual(layer.weight);

    const f: Matrix = { rows: 2, cols: 16, data: new Float64Array(32).map((_, i) => Math.sin(i)) };
    const z = make('identity').apply(f);
    for (let j = 0; j < 500; j += 97) {
      let s = 0;
      for (let k = 0; k < 16; k++) s += f.data[16 + k] * layer.weight[k * 500 + j];
      expect(z.data[500 + j]).toBeCloseTo(s, 14);
    }
    expect(layer.apply(f)).toEqual(activate(z, 'relu'));
    expect(make('tanh').apply(f).data).toEqual(z.data.map(Math.tanh));
    expect(activate(z, 'relu').data.every((v, i) => v === Math.max(0, z.data[i]))).toBe(true);
  });
});

describe('FeatureStats', () => {
  it('keeps per-class count, mean and Bessel-corrected std, and draws pseudo-features from them', () => {
    const stats = new FeatureStats(2);
    stats.add({ rows: 4, cols: 2, data: Float64Array.from([1, 10, 3, 10, 5, 10, 7, 7]) }, [0, 0, 0, 1]);
    expect(stats.classes()).toEqual([0, 1]);
    expect(stats.count(0)).toBe(3);
    expect(Array.from(stats.mean(0))).toEqual([3, 10]);
    expect(Array.from(stats.std(0))).toEqual([2, 0]);
    // One sample: std 0, so every pseudo-feature is the sample itself.
    expect(Array.from(stats.std(1))).toEqual([0, 0]);
    expect(Array.from(stats.sample(1, 3, Rng.derive(0, 's')).data)).toEqual([7, 7, 7, 7, 7, 7]);
    expect([...stats.deficits()]).toEqual([
      [0, 0],
      [1, 2],
    ]);
    expect(stats.bytes()).toBe(2 * 8 * (1 + 2 * 2));

    const big = new FeatureStats(1);
    const rng = Rng.derive(7, 'stats');
    big.add({ rows: 2, cols: 1, data: Float64Array.from([0, 2]) }, [3, 3]);
    const draws = big.sample(3, 20000, rng).data;
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const sd = Math.sqrt(draws.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws.length - 1));
    expect(mean).toBeCloseTo(1, 1);
    // Bessel-corrected: the two samples 0 and 2 give std sqrt(2), not 1.
    expect(sd).toBeCloseTo(Math.SQRT2, 1);
    // Drawing in parts from one stream gives the same values as all at once.
    const [a, b] = [Rng.derive(8, 'parts'), Rng.derive(8, 'parts')];
    expect([...big.sample(3, 3, a).data, ...big.sample(3, 4, a).data]).toEqual([...big.sample(3, 7, b).data]);
    stats.clear();
    expect(stats.classes()).toEqual([]);
  });
});
