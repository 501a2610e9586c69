/**
 * The "buffer layer" of the analytic methods: a fixed random projection of the backbone's
 * features to a wider space, X = act(f W_b), where the ridge classifier is fitted. Width d is
 * the ridge's dimension (R is d x d).
 *
 * W_b (in x d) is drawn once from a seeded stream with entries U(-1/sqrt(in), 1/sqrt(in)), the
 * range of PyTorch's default `nn.Linear` initialisation that the authors' `RandomBuffer` keeps;
 * no bias. It is never trained, so the same seed gives the same projection on every machine,
 * and `reset` of a method keeps it.
 */
import { CttaError } from '../../errors.js';
import type { Rng } from '../../util/rng.js';
import { type Matrix, multiplySparseRows } from './recursive-ridge.js';

/** ReLU (ACIL, AEF-OCL, DS-AL's main stream), tanh (DS-AL's compensation stream), or none. */
export type Activation = 'relu' | 'tanh' | 'identity';

export interface BufferLayerOptions {
  /** Width of the backbone features. */
  inputDim: number;
  /** d: width of the projection. */
  width: number;
  /** The stream W_b is drawn from (row by row, in x d); it is not used afterwards. */
  rng: Rng;
  activation?: Activation;
}

/** `m` with `activation` applied to every entry, as a new matrix. */
export function activate(m: Matrix, activation: Activation): Matrix {
  return activateInPlace({ rows: m.rows, cols: m.cols, data: m.data.slice() }, activation);
}

function activateInPlace(m: Matrix, activation: Activation): Matrix {
  const data = m.data;
  if (activation === 'relu') {
    for (let i = 0; i < data.length; i++) if (!(data[i] > 0)) data[i] = 0;
  } else if (activation === 'tanh') {
    for (let i = 0; i < data.length; i++) data[i] = Math.tanh(data[i]);
  }
  return m;
}

export class BufferLayer {
  readonly inputDim: number;
  readonly width: number;
  readonly activation: Activation;
  /** W_b, inputDim x width, row-major. */
  readonly weight: Float64Array;

  constructor({ inputDim, width, rng, activation = 'relu' }: BufferLayerOptions) {
    if (!Number.isInteger(inputDim) || inputDim < 1) throw new CttaError(`buffer layer input width ${inputDim} is not a positive integer`);
    if (!Number.isInteger(width) || width < 1) throw new CttaError(`buffer layer width ${width} is not a positive integer`, { fix: 'set bufferSize to a positive integer' });
    this.inputDim = inputDim;
    this.width = width;
    this.activation = activation;
    const bound = 1 / Math.sqrt(inputDim);
    this.weight = new Float64Array(inputDim * width);
    for (let i = 0; i < this.weight.length; i++) this.weight[i] = bound * (2 * rng.float() - 1);
  }

  /** f W_b (n x width), no activation. */
  project(f: Matrix): Matrix {
    if (f.cols !== this.inputDim || f.data.length !== f.rows * f.cols) {
      throw new CttaError(`the buffer layer takes ${this.inputDim} features per row, got ${f.rows} x ${f.cols}`, { fix: 'use the backbone the method was initialised with' });
    }
    return { rows: f.rows, cols: this.width, data: multiplySparseRows(f.data, f.rows, this.inputDim, this.weight, this.width) };
  }

  /** act(f W_b) with the layer's activation. */
  apply(f: Matrix): Matrix {
    return activateInPlace(this.project(f), this.activation);
  }

  /** Bytes of W_b (float64). */
  bytes(): number {
    return 8 * this.weight.length;
  }
}
