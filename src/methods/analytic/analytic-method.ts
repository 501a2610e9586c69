/**
 * What ACIL, AEF-OCL and DS-AL share (Zhuang et al., ZHUANGHP/Analytic-continual-learning): a
 * frozen backbone whose features go through a fixed random buffer layer into ridge classifiers
 * fitted in closed form by recursive least squares (./recursive-ridge.ts), one labelled batch at
 * a time. Nothing of the network is trained; BatchNorm stays on its running statistics.
 *
 * Interface choices common to the three:
 * - Labels are required (`usesLabels`); the methods answer over the dataset's K classes
 *   (`labelSpace: 'dataset'`), whatever the network's head.
 * - Ridge columns are the classes in order of first appearance; a class never seen gets
 *   probability exactly 0, and before any label every class gets 1/K.
 * - Probabilities are softmax(scores / temperature) over the seen classes. The scores are
 *   regression outputs against one-hot targets (mostly in [0, 1]), so at temperature 1 the
 *   probabilities are flat; the argmax, which accuracy uses, does not depend on the temperature.
 * - The buffer layer is drawn from `Rng.derive(seed, 'analytic', 'buffer-layer')`, not from the
 *   method's name: for one seed the three methods share the projection, so their differences
 *   are the methods' own (AEF-OCL on balanced data and DS-AL with C = 0 reproduce ACIL exactly).
 * - All state lives in host memory (Float64Arrays), so `hostStateBytes` = `stateBytes`; no
 *   tensor outlives a call.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { CttaError } from '../../errors.js';
import type { Network } from '../../models/network.js';
import { Rng } from '../../util/rng.js';
import { FrozenMethod } from '../base/frozen-method.js';
import type { MethodContext } from '../types.js';
import { type Activation, BufferLayer } from './buffer-layer.js';
import type { Matrix } from './recursive-ridge.js';

/** The options every analytic method has (zod shapes, spread into each method's schema). */
/**
 * The per-dataset defaults the three methods share. CIFAR-100: the authors' runs (width 8192,
 * gamma 0.1; also the AEFOCL class's default). Fashion-MNIST (our choice): width 1024, 16x the
 * shipped ResNet-8's 64 features: AEF-OCL refits up to thousands of pseudo-features per batch at
 * d^2 each, which at 2048 takes ~25 s a batch on the long-tailed stream, and the three share the
 * width so that they compare on one projection. Other datasets: the option defaults.
 */
export const ANALYTIC_DEFAULTS = {
  cifar100: { bufferSize: 8192, gamma: 0.1 },
  'fashion-mnist': { bufferSize: 1024 },
} as const;

export const analyticOptionShape = {
  /** Ridge penalty: R starts at I / gamma (the authors' 0.1, on CIFAR-100 and ImageNet-1k alike). */
  gamma: z.number().positive().default(0.1),
  /**
   * Width d of the buffer layer (the ridge's dimension). The ridge's R alone is 8 d^2 bytes:
   * 32 MiB at the default 2048, 512 MiB at the authors' CIFAR-100 value 8192, 2 GiB at their
   * ImageNet-1k value 16384 (DS-AL holds two, AEF-OCL a second copy while balanced), and each
   * fitted row costs about 1.5 d^2 multiply-adds in plain JavaScript.
   */
  bufferSize: z.number().int().min(1).max(16384).default(2048),
  /** Softmax temperature of the returned probabilities (the argmax does not depend on it). */
  temperature: z.number().positive().default(1),
};

export interface AnalyticOptions extends Record<string, unknown> {
  gamma: number;
  bufferSize: number;
  temperature: number;
}

/** What a call to `scores` is for: a stream prediction (may balance, AEF-OCL) or a held-out evaluation (changes nothing). */
export type ScoreCall = 'predict' | 'evaluate';

/** One labelled batch as the methods fit it. */
export interface AnalyticBatch {
  /** Backbone features, n x featureDim (float64 copies of the network's float32 features). */
  features: Matrix;
  /** Dataset class of each row. */
  labels: Int32Array;
  /** Ridge column of each row. */
  columns: Int32Array;
  /** One-hot targets over the classes seen so far (this batch's included), n x seen. */
  targets: Matrix;
  /** Columns of the classes this batch showed for the first time (ascending). */
  newColumns: number[];
}

export abstract class AnalyticMethod<O extends AnalyticOptions> extends FrozenMethod<O> {
  override readonly usesLabels: boolean = true;
  override readonly labelSpace: 'head' | 'dataset' = 'dataset';
  protected projection!: BufferLayer;
  /** Dataset class of each ridge column, in order of first appearance. */
  private readonly columnClasses: number[] = [];
  private readonly columnOf = new Map<number, number>();

  /** The activation the buffer layer applies (DS-AL projects linearly and activates per stream). */
  protected bufferActivation(): Activation {
    return 'relu';
  }

  protected override async setup(ctx: MethodContext): Promise<void> {
    this.projection = new BufferLayer({
      inputDim: ctx.network.featureDim,
      width: this.options.bufferSize,
      rng: Rng.derive(ctx.seed, 'analytic', 'buffer-layer'),
      activation: this.bufferActivation(),
    });
    this.clearState();
  }

  /** Dataset classes in ridge-column order (the classes seen so far). */
  get seenClasses(): readonly number[] {
    return this.columnClasses;
  }

  /** The ridge column of dataset class `c`, or undefined if never seen. */
  protected columnOfClass(c: number): number | undefined {
    return this.columnOf.get(c);
  }

  /** Fits one labelled batch (the classes are registered already). */
  protected abstract fitBatch(batch: AnalyticBatch): void;

  /** Ridge scores (n x seen classes) of backbone features; for 'evaluate' it must change nothing. */
  protected abstract scores(features: Matrix, call: ScoreCall): Matrix;

  /** Empties the method's own state (ridges, statistics, counters); the projection stays. */
  protected abstract clearState(): void;

  /** Bytes of the ridge state (R and W of every stream, and any backup). */
  protected abstract ridgeBytes(): number;

  /** Bytes of other statistics the method keeps (AEF-OCL's per-class moments). */
  protected statisticsBytes(): number {
    return 0;
  }

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return this.probabilities(x, this.network, 'predict');
  }

  protected override evaluationOutput(x: tf.Tensor4D, net: Network): tf.Tensor2D {
    return this.probabilities(x, net, 'evaluate');
  }

  /**
   * The float64 ridge scores of held-out images over `seenClasses` (the numbers behind
   * `evaluate`, before the softmax and the float32 rounding); changes nothing.
   */
  evaluateScores(x: tf.Tensor4D): Matrix {
    const net = this.evaluationNetwork();
    return net.withFrozenStatistics(() => {
      const f = this.featuresOf(x, net);
      return this.columnClasses.length === 0 ? { rows: f.rows, cols: 0, data: new Float64Array(0) } : this.scores(f, 'evaluate');
    });
  }

  override async adapt(x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void> {
    if (!y) {
      throw new CttaError(`${this.name} needs the labels of every batch: adapt(x) was called without them`, {
        fix: `${this.name} is an online continual-learning method; run it on a scenario that reveals labels after each prediction`,
      });
    }
    const n = x.shape[0];
    if (y.rank !== 1 || y.shape[0] !== n) {
      throw new CttaError(`${this.name}: ${n} images but labels of shape [${y.shape.join(', ')}]`, { fix: 'pass one label per image, as a 1-D tensor' });
    }
    const raw = y.dataSync();
    const K = this.ctx.numClasses;
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = raw[i];
      if (!Number.isInteger(v) || v < 0 || v >= K) {
        throw new CttaError(`${this.name}: label ${v} of image ${i} is not a class index in [0, ${K})`, { fix: 'labels must be the dataset\'s class indices' });
      }
      labels[i] = v;
    }
    const features = this.featuresOf(x, this.network);
    const newColumns: number[] = [];
    for (const c of labels) {
      if (this.columnOf.has(c)) continue;
      this.columnOf.set(c, this.columnClasses.length);
      newColumns.push(this.columnClasses.length);
      this.columnClasses.push(c);
    }
    const seen = this.columnClasses.length;
    const columns = labels.map((c) => this.columnOf.get(c)!);
    const targets = new Float64Array(n * seen);
    for (let i = 0; i < n; i++) targets[i * seen + columns[i]] = 1;
    this.fitBatch({ features, labels, columns, targets: { rows: n, cols: seen, data: targets }, newColumns });
  }

  /** Bytes by part: the ridge state, the buffer layer's weights, other statistics, and the replay buffer (none). */
  stateParts(): Record<string, number> {
    // The same part names as the replay methods' (buffer / optimizer / analytic / other), so the
    // OCL table's columns line up: R, W and class statistics are the analytic state, the fixed
    // random projection "other".
    return {
      analytic: this.ridgeBytes() + this.statisticsBytes(),
      other: this.projection?.bytes() ?? 0,
    };
  }

  /** Every byte of `stateParts`: all of it is in Float64Arrays, which tf.memory() does not see. */
  hostStateBytes(): number {
    return Object.values(this.stateParts()).reduce((a, b) => a + b, 0);
  }

  override stateBytes(): number {
    return super.stateBytes() + this.hostStateBytes();
  }

  override async reset(): Promise<void> {
    await super.reset();
    this.columnClasses.length = 0;
    this.columnOf.clear();
    this.clearState();
  }

  /** Backbone features of `x` as a float64 matrix (the tensors are disposed here). */
  private featuresOf(x: tf.Tensor4D, net: Network): Matrix {
    const f = net.features(x);
    try {
      const [rows, cols] = f.shape;
      return { rows, cols, data: Float64Array.from(f.dataSync()) };
    } finally {
      f.dispose();
    }
  }

  /** [N, K] float32 probabilities: softmax over the seen classes' scores, 0 elsewhere; 1/K before any label. */
  private probabilities(x: tf.Tensor4D, net: Network, call: ScoreCall): tf.Tensor2D {
    const K = this.ctx.numClasses;
    const n = x.shape[0];
    const out = new Float32Array(n * K);
    if (this.columnClasses.length === 0) {
      out.fill(1 / K);
      return tf.tensor2d(out, [n, K]);
    }
    const s = this.scores(this.featuresOf(x, net), call);
    const seen = this.columnClasses;
    const t = this.options.temperature;
    const e = new Float64Array(seen.length);
    for (let i = 0; i < n; i++) {
      let most = -Infinity;
      for (let j = 0; j < seen.length; j++) most = Math.max(most, s.data[i * s.cols + j]);
      let total = 0;
      for (let j = 0; j < seen.length; j++) total += e[j] = Math.exp((s.data[i * s.cols + j] - most) / t);
      for (let j = 0; j < seen.length; j++) out[i * K + seen[j]] = e[j] / total;
    }
    return tf.tensor2d(out, [n, K]);
  }
}
