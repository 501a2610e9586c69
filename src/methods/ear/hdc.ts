/**
 * The hyperdimensional (HDC) out-of-distribution detector EAR builds on: Hyperdimensional
 * Feature Fusion (Wilson et al., WACV 2023; read in the paper and its official code,
 * SamWilso/HDFF_Official `HDFF/feature_monitor.py`, `HDFF/VSAs.py`, `utils/eval.py`).
 *
 *  - Each tapped layer's feature map is globally average-pooled to one value per channel and
 *    mean-centred by one scalar per layer (the mean of the pooled values over the calibration
 *    images and the channels, as HDFF's `captureFeatureMeans`). On Fashion-MNIST per-channel
 *    centring, per-channel standardisation or unit-norm layers before bundling gave no better or
 *    worse source-vs-corruption AUROC (tried; not kept).
 *  - It is projected into a D-dimensional space by a fixed random matrix with orthonormal rows
 *    (HDFF: `nn.init.orthogonal_` on a [channels, D] matrix), one matrix per layer.
 *  - Bundling is addition: the image descriptor is the sum of its layers' projections, a class
 *    descriptor the sum of the descriptors of the class's images.
 *  - An image's similarity to a set of class descriptors is its largest cosine similarity to one
 *    of them; HDFF's OOD score is minus that.
 *
 * Class descriptors and the statistics of in-domain similarities live in `DomainDescriptors`,
 * one per domain (EAR keeps one set for the source and one per adaptor).
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import type { Rng } from '../../util/rng.js';
import { tensorBytes } from '../base/frozen-method.js';

/** Below this norm a vector counts as zero (its cosine similarity is taken as 0). */
const EPS = 1e-12;

/**
 * A rows x dim matrix (row-major) whose rows are orthonormal, rows <= dim: Gaussian rows made
 * orthonormal by modified Gram-Schmidt in float64 (the rows of the Q of a QR decomposition, as
 * PyTorch's orthogonal init gives, up to signs).
 */
export function orthonormalRows(rows: number, dim: number, rng: Rng): Float32Array {
  if (rows > dim) {
    throw new CttaError(`the HDC space has ${dim} dimensions, fewer than the ${rows} channels of a tapped layer`, {
      fix: `set hyperDim to at least ${rows}`,
    });
  }
  const q: Float64Array[] = [];
  while (q.length < rows) {
    const v = Float64Array.from({ length: dim }, () => rng.normal());
    for (const u of q) {
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += v[j]! * u[j]!;
      for (let j = 0; j < dim; j++) v[j]! -= dot * u[j]!;
    }
    let norm = 0;
    for (let j = 0; j < dim; j++) norm += v[j]! * v[j]!;
    norm = Math.sqrt(norm);
    // A draw (numerically) inside the span of the others: draw again (never happens in practice).
    if (norm < 1e-8) continue;
    for (let j = 0; j < dim; j++) v[j]! /= norm;
    q.push(v);
  }
  const out = new Float32Array(rows * dim);
  q.forEach((v, i) => out.set(v, i * dim));
  return out;
}

/** The fixed projection of pooled layer features into the HDC space (one matrix per layer). */
export class HdcProjector {
  private readonly projections: tf.Tensor2D[];
  /** One centring scalar per layer. */
  private means: number[];

  constructor(
    readonly channels: readonly number[],
    readonly dim: number,
    rng: Rng,
  ) {
    this.projections = channels.map((c) => tf.tensor2d(orthonormalRows(c, dim, rng), [c, dim]));
    this.means = channels.map(() => 0);
  }

  /** HDFF's centring: one scalar per layer, subtracted from every channel of its pooled features. */
  setLayerMeans(means: readonly number[]): void {
    if (means.length !== this.channels.length) throw new Error(`HdcProjector: ${means.length} means for ${this.channels.length} layers`);
    this.means = [...means];
  }

  get layerMeans(): readonly number[] {
    return this.means;
  }

  /** Image descriptors [N, D]: the bundle (sum) over layers of (pooled - layer mean) x projection. */
  encode(pooled: readonly tf.Tensor2D[]): tf.Tensor2D {
    return tf.tidy(() => tf.addN(pooled.map((p, l) => tf.matMul(tf.sub(p, this.means[l]!), this.projections[l]!))) as tf.Tensor2D);
  }

  bytes(): number {
    return this.projections.reduce((s, p) => s + tensorBytes(p), 0);
  }

  dispose(): void {
    tf.dispose(this.projections);
  }
}

/** Running mean and variance (Welford, float64) of one domain's in-domain similarities. */
export class ScoreStats {
  private n = 0;
  private mu = 0;
  private m2 = 0;

  add(values: ArrayLike<number>): void {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      this.n++;
      const d = v - this.mu;
      this.mu += d / this.n;
      this.m2 += d * (v - this.mu);
    }
  }

  get count(): number {
    return this.n;
  }

  get mean(): number {
    return this.mu;
  }

  /** Sample standard deviation (0 below two values). */
  get std(): number {
    return this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : 0;
  }
}

/**
 * The class descriptors of one domain (the sum of the descriptors of its images of each class)
 * and the statistics of its images' leave-one-out similarities, which calibrate "in this domain".
 */
export class DomainDescriptors {
  readonly stats = new ScoreStats();
  private sums: tf.Tensor2D;
  private readonly counts: Int32Array;

  constructor(
    readonly numClasses: number,
    readonly dim: number,
  ) {
    this.sums = tf.zeros([numClasses, dim]);
    this.counts = new Int32Array(numClasses);
  }

  /** Images bundled into each class. */
  get classCounts(): Int32Array {
    return this.counts.slice();
  }

  get size(): number {
    return this.counts.reduce((a, b) => a + b, 0);
  }

  /** Bundles descriptors `h` [N, D] into the classes `labels`. */
  add(h: tf.Tensor2D, labels: Int32Array): void {
    const next = tf.tidy(() => tf.add(this.sums, tf.matMul(tf.oneHot(tf.tensor1d(labels, 'int32'), this.numClasses), h, true, false)) as tf.Tensor2D);
    this.sums.dispose();
    this.sums = next;
    for (const c of labels) this.counts[c]++;
  }

  /** max over the non-empty classes of cos(h_i, class descriptor), per image [N]; -1 when all are empty. */
  similarity(h: tf.Tensor2D): Float32Array {
    return tf.tidy(() => {
      const cos = cosines(h, this.sums);
      const filled = tf.tensor2d(Array.from(this.counts, (c) => (c > 0 ? 1 : 0)), [1, this.numClasses], 'bool');
      return tf.max(tf.where(tf.broadcastTo(filled, cos.shape), cos, tf.fill(cos.shape, -1)), 1).dataSync() as Float32Array;
    });
  }

  /**
   * After `add(h, labels)`: each image's similarity with itself left out of its own class's
   * descriptor (so it is scored as an image the descriptors never saw, the way stream images
   * are scored), per image [N]. A class left empty without the image counts as absent.
   */
  leaveOneOut(h: tf.Tensor2D, labels: Int32Array): Float32Array {
    return tf.tidy(() => {
      const own = tf.oneHot(tf.tensor1d(labels, 'int32'), this.numClasses).toFloat(); // [N, K]
      const dot = tf.matMul(h, this.sums, false, true); // [N, K]
      const hh = tf.sum(tf.square(h), 1, true); // [N, 1]
      const bb = tf.sum(tf.square(this.sums), 1).reshape([1, this.numClasses]); // [1, K]
      // Own class: <h, B - h> = <h, B> - |h|^2 and |B - h|^2 = |B|^2 - 2<h, B> + |h|^2.
      const dotLoo = tf.sub(dot, tf.mul(own, hh));
      const bbLoo = tf.relu(tf.sub(bb, tf.mul(own, tf.sub(tf.mul(dot, 2), hh))));
      const cos = tf.div(dotLoo, tf.maximum(tf.mul(tf.sqrt(hh), tf.sqrt(bbLoo)), EPS));
      const countsLoo = tf.sub(tf.tensor2d(Array.from(this.counts), [1, this.numClasses]), own);
      return tf.max(tf.where(tf.greater(countsLoo, 0), cos, tf.fill(cos.shape, -1)), 1).dataSync() as Float32Array;
    });
  }

  bytes(): number {
    return tensorBytes(this.sums);
  }

  dispose(): void {
    this.sums.dispose();
  }
}

/** Cosine similarity of every row of `a` [N, D] with every row of `b` [K, D]: [N, K] (0 for a zero row). */
export function cosines(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const dot = tf.matMul(a, b, false, true);
    const na = tf.norm(a, 'euclidean', 1, true);
    const nb = tf.norm(b, 'euclidean', 1).reshape([1, -1]);
    return tf.div(dot, tf.maximum(tf.mul(na, nb), EPS)) as tf.Tensor2D;
  });
}
