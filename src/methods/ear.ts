/**
 * EAR, Encoder-Adaptor-Reconfigurator (Daniels, Hu, Lomnitz, Miller, Raghavan, Zhang,
 * Piacentino, Zhang: "Efficient Model Adaptation for Continual Learning at the Edge", arXiv
 * 2308.02084, 2023): domain-incremental online continual learning from a pretrained model, with
 * the labels of each batch revealed after its prediction. What we read of the paper: its
 * abstract and front matter (arxiv.org/abs/2308.02084, ar5iv.labs.arxiv.org/html/2308.02084); the
 * body (the detector's layers and thresholds, the adaptors' placement and training) was not
 * available to us, so everything below that the abstract does not say is our choice.
 *
 * From the paper (abstract): a fixed (frozen) DNN feature encoder with shallow networks trained on
 * top of it for novel data; out-of-distribution detection by combining the DNN with
 * hyperdimensional computing (HDC); low-parameter adaptors for OOD data; the architecture grows as
 * needed and data is routed through the matching adaptor, so earlier domains are not forgotten.
 * The HDC detector is Hyperdimensional Feature Fusion (HDFF; Wilson, Fischer, Suenderhauf,
 * Dayoub, WACV 2023, arXiv 2112.05341; its paper and official code SamWilso/HDFF_Official, see
 * ear/hdc.ts): the pooled feature maps of several layers, centred, each projected by a random
 * matrix with orthonormal rows (D = 10,000) and bundled (summed) into an image descriptor; class
 * descriptors bundle the images of a class; the score is the largest cosine similarity to a class
 * descriptor, HDFF's OOD score minus that (the per-batch diagnostic `oodScore` is its mean; the
 * exported `auroc(scoresIn, scoresOut)` turns scores into a source-vs-shift AUROC).
 *
 * Our choices (each an assumption):
 *  - Out of scope: the paper's zero-shot architecture search. Every adaptor has one fixed shape
 *    (ear/adaptor.ts): a residual MLP from the standardised pooled taps (hidden width `hidden`)
 *    that corrects the penultimate features, and its own linear head (the "reconfigurator"),
 *    initialised so that a fresh adaptor predicts what the base model does.
 *  - Taps: the stem and every residual block's output (`layers: 'blocks'`), shared by the
 *    detector and the adaptors; one encoder pass per batch gives both.
 *  - Source class descriptors from `calibrationSize` clean images (`cleanImages`), each bundled
 *    into the class the base model predicts for it (no labels there). An adaptor domain's
 *    descriptors bundle the stream's revealed labels and grow with every batch of the domain.
 *  - "Matches a domain" is calibrated per domain: each domain keeps the mean and std of its own
 *    images' leave-one-out similarities (each image scored against its domain's descriptors with
 *    itself left out, when it is bundled), and an image's z-score for domain d is
 *    (similarity - mean_d) / std_d.
 *  - Shift detection is per labelled batch (batches end at domain changes): a batch belongs to
 *    the known domain of highest mean z, unless that mean is below -`shiftThreshold`: a shift, and
 *    a new domain with a fresh adaptor (if the batch has at least `minShiftBatch` images and fewer
 *    than `maxAdaptors` exist; otherwise it joins the best match). A batch trains its domain's
 *    adaptor; a source batch trains nothing (the base path is frozen). On Fashion-MNIST a
 *    per-image rule (too small a share of images with z above a floor) let the first, broad
 *    noise domain absorb snow and fog (tried; not kept).
 *  - Routing at prediction: each image to the domain of its highest z-score (`routing: 'image'`),
 *    or the whole batch to the domain of highest mean z (`'batch'`).
 *  - Adaptor training (ear/domain.ts): per labelled batch, `steps` Adam steps (lr `lr`) on the
 *    batch plus `replay` rows of a per-domain reservoir of `memorySize` encoder outputs.
 *    Defaults (lr 3e-3, 5 steps, width 64) were picked in a few runs on the same five domains.
 *  - The encoder never changes (BatchNorm on its stored statistics, read-only), nor the base head.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { CttaError } from '../errors.js';
import type { Network } from '../models/network.js';
import { FrozenMethod } from './base/frozen-method.js';
import { Adaptor } from './ear/adaptor.js';
import { calibrateSource } from './ear/calibration.js';
import { Domain } from './ear/domain.js';
import { HdcProjector } from './ear/hdc.js';
import { disposePass, encoderPass, selectTapLayers, tapChannels } from './ear/taps.js';
import { registerMethod } from './registry.js';
import type { MethodContext } from './types.js';

export { auroc } from './ear/auroc.js';

export const earOptions = z.strictObject({
  /** Layers whose pooled outputs feed the detector and the adaptors: 'blocks' (stem + every residual block's output) or a name pattern. */
  layers: z.string().default('blocks'),
  /** D, dimensions of the HDC space (HDFF: 10,000). */
  hyperDim: z.number().int().positive().default(10000),
  /** Clean source images that build the source class descriptors. */
  calibrationSize: z.number().int().min(2).default(1000),
  /** A labelled batch is a shift (new adaptor) when its mean z-score is below -shiftThreshold in every known domain. */
  shiftThreshold: z.number().positive().default(1),
  /** Smaller batches never start a domain (their statistics would be too thin). */
  minShiftBatch: z.number().int().min(2).default(8),
  /** At most this many adaptors; a shift beyond it joins the closest known domain. */
  maxAdaptors: z.number().int().min(1).default(8),
  routing: z.enum(['image', 'batch']).default('image'),
  /** Adaptor hidden width. */
  hidden: z.number().int().positive().default(64),
  lr: z.number().positive().default(3e-3),
  /** Adam steps per labelled batch. */
  steps: z.number().int().positive().default(5),
  /** Rows of the domain's memory replayed with the batch in each step (0 = none). */
  replay: z.number().int().min(0).default(64),
  /** Encoder outputs each adaptor domain keeps for replay. */
  memorySize: z.number().int().positive().default(512),
});
export type EarOptions = z.output<typeof earOptions>;

/** Standard deviations of in-domain similarities below this are taken as this. */
const MIN_SCORE_STD = 1e-3;

/** What one pass over a batch gives: kept from `predict` for the `adapt` that follows. */
interface Analysis {
  x: tf.Tensor4D;
  /** Standardised pooled taps [N, sum of channels], the adaptors' input. */
  z: tf.Tensor2D;
  features: tf.Tensor2D;
  descriptors: tf.Tensor2D;
  /** Per domain, each image's z-score (NaN-free; -Infinity for a domain with no statistics yet). */
  zScores: Float64Array[];
  /** Each image's similarity to the source class descriptors. */
  sourceSimilarity: Float32Array;
  routes: Int32Array;
}

export class EarMethod extends FrozenMethod<EarOptions> {
  override readonly usesLabels: boolean = true;
  override readonly labelSpace: 'head' | 'dataset' = 'dataset';
  private layers: tf.layers.Layer[] = [];
  private projector?: HdcProjector;
  private inputMean?: tf.Tensor2D;
  private inputStd?: tf.Tensor2D;
  private head?: { kernel: Float32Array; bias: Float32Array };
  /** domains[0] is the source (base path); domains[k] has adaptor k. */
  private domains: Domain[] = [];
  private pending?: Analysis;

  constructor(options: EarOptions) {
    super('ear', options);
  }

  protected override async setup(ctx: MethodContext): Promise<void> {
    const { network, numClasses, headClasses } = ctx;
    if (network.numClasses !== numClasses || headClasses.some((c, i) => c !== i)) {
      throw new CttaError(`ear trains adaptor heads over all ${numClasses} classes of the dataset, but the model's head has ${network.numClasses} outputs`, {
        fix: 'use a checkpoint whose head predicts every class of the dataset (e.g. models/fmnist-resnet8)',
      });
    }
    if (!ctx.cleanImages) {
      throw new CttaError("EAR's source class descriptors need clean images of the source dataset, and this scenario names none", {
        fix: 'add "clean": {"dataset": "...", "split": "test"} (clean data of the model\'s training distribution) to the scenario',
      });
    }
    const o = this.options;
    this.layers = selectTapLayers(network, o.layers);
    this.projector = new HdcProjector(tapChannels(this.layers), o.hyperDim, ctx.rng);
    this.head = headValues(this.network);
    const source = new Domain(numClasses, o.hyperDim, undefined);
    this.domains = [source];
    ctx.status?.(`EAR: HDC class descriptors from ${o.calibrationSize} clean images`);
    const images = await ctx.cleanImages(o.calibrationSize);
    try {
      const cal = calibrateSource(network, this.layers, images, this.projector, source.descriptors);
      this.inputMean = tf.tensor2d(cal.inputMean, [1, cal.inputMean.length]);
      this.inputStd = tf.tensor2d(cal.inputStd, [1, cal.inputStd.length]);
    } finally {
      images.dispose();
    }
  }

  /** Adaptors added so far. */
  get adaptorCount(): number {
    return this.domains.length - 1;
  }

  /** The domain each image of `x` is routed to (0 = the base path, k = adaptor k); changes nothing. */
  routes(x: tf.Tensor4D): Int32Array {
    const { analysis, probs } = this.analyse(x);
    probs.dispose();
    this.disposeAnalysis(analysis);
    return analysis.routes;
  }

  /** HDFF's OOD score of each image: minus its largest cosine similarity to a source class descriptor; changes nothing. */
  oodScores(x: tf.Tensor4D): Float32Array {
    const { analysis, probs } = this.analyse(x);
    probs.dispose();
    this.disposeAnalysis(analysis);
    return analysis.sourceSimilarity.map((s) => -s);
  }

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    this.dropPending();
    const { analysis, probs } = this.analyse(x);
    const n = analysis.routes.length;
    let ood = 0;
    for (const s of analysis.sourceSimilarity) ood -= s;
    this.diagnose('oodScore', ood / Math.max(n, 1));
    this.diagnose('routedToAdaptors', analysis.routes.filter((r) => r > 0).length / Math.max(n, 1));
    this.diagnose('adaptors', this.adaptorCount);
    // Kept for the adapt that follows (the same batch): no second encoder pass.
    this.pending = analysis;
    return probs;
  }

  protected override evaluationOutput(x: tf.Tensor4D): tf.Tensor2D {
    const { analysis, probs } = this.analyse(x);
    this.disposeAnalysis(analysis);
    return probs;
  }

  override async adapt(x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void> {
    if (!y) {
      throw new CttaError('ear learns from the labels revealed after each prediction, and the stream gave none', {
        fix: 'run it on a scenario whose labels the runner passes (every scenario does; a custom runner must call adapt(x, y))',
      });
    }
    let a = this.pending;
    this.pending = undefined;
    if (!a || a.x !== x) {
      if (a) this.disposeAnalysis(a);
      const fresh = this.analyse(x);
      fresh.probs.dispose();
      a = fresh.analysis;
    }
    try {
      const labels = Int32Array.from(await y.data());
      const o = this.options;
      const best = bestMeanDomain(a.zScores);
      // How well the batch matches the known domain it matches best: its mean z-score there.
      const match = mean(a.zScores[best]!);
      this.diagnose('match', match);
      let target = best;
      const shift = match < -o.shiftThreshold && labels.length >= o.minShiftBatch && this.adaptorCount < o.maxAdaptors;
      if (shift) target = this.addDomain();
      this.diagnose('newAdaptor', shift ? 1 : 0);
      this.diagnose('domain', target);
      if (target === 0) return; // the base path is frozen: a source batch trains nothing
      const domain = this.domains[target]!;
      domain.descriptors.add(a.descriptors, labels);
      domain.descriptors.stats.add(domain.descriptors.leaveOneOut(a.descriptors, labels));
      this.diagnose('loss', domain.train(a.z, a.features, labels, o));
    } finally {
      this.disposeAnalysis(a);
    }
  }

  /** Adds a domain with a fresh adaptor (it predicts as the base path until trained); returns its index. */
  private addDomain(): number {
    const o = this.options;
    const shape = { inputDim: this.inputMean!.shape[1], featureDim: this.network.featureDim, hidden: o.hidden, numClasses: this.network.numClasses };
    const adaptor = new Adaptor(shape, this.head!, this.ctx.rng);
    this.domains.push(new Domain(this.network.numClasses, o.hyperDim, adaptor, { capacity: o.memorySize, rng: this.ctx.rng }));
    return this.domains.length - 1;
  }

  /** One encoder pass: the HDC descriptors, each domain's z-scores, the routes, and the routed prediction. */
  private analyse(x: tf.Tensor4D): { analysis: Analysis; probs: tf.Tensor2D } {
    const pass = encoderPass(this.network, this.layers, x);
    const made: tf.Tensor[] = [];
    try {
      const n = x.shape[0];
      const zIn = tf.tidy(() => tf.div(tf.sub(tf.concat(pass.pooled, 1), this.inputMean!), this.inputStd!) as tf.Tensor2D);
      made.push(zIn);
      const descriptors = this.projector!.encode(pass.pooled);
      made.push(descriptors);
      const similarities = this.domains.map((d) => d.descriptors.similarity(descriptors));
      const zScores = this.domains.map((d, k) => zScoresOf(similarities[k]!, d));
      const routes = this.options.routing === 'batch' ? new Int32Array(n).fill(bestMeanDomain(zScores)) : perImageRoutes(zScores, n);
      const probs = this.routedPrediction(pass.logits, zIn, pass.features, routes);
      return { analysis: { x, z: zIn, features: pass.features.clone(), descriptors, zScores, sourceSimilarity: similarities[0]!, routes }, probs };
    } catch (err) {
      tf.dispose(made);
      throw err;
    } finally {
      disposePass(pass);
    }
  }

  /** Softmax of each image's routed path: the base logits, or its adaptor's. */
  private routedPrediction(baseLogits: tf.Tensor2D, z: tf.Tensor2D, f: tf.Tensor2D, routes: Int32Array): tf.Tensor2D {
    const used = [...new Set(routes)].sort((a, b) => a - b);
    return tf.tidy(() => {
      if (used.length === 1 && used[0] === 0) return tf.softmax(baseLogits);
      const parts = used.map((k) => {
        const logits = k === 0 ? baseLogits : this.domains[k]!.adaptor!.logits(z, f);
        const mask = tf.tensor2d(Array.from(routes, (r) => (r === k ? 1 : 0)), [routes.length, 1]);
        return tf.mul(mask, tf.softmax(logits));
      });
      return tf.addN(parts) as tf.Tensor2D;
    });
  }

  private disposeAnalysis(a: Analysis): void {
    tf.dispose([a.z, a.features, a.descriptors]);
  }

  private dropPending(): void {
    if (this.pending) this.disposeAnalysis(this.pending);
    this.pending = undefined;
  }

  private pendingBytes(): number {
    const a = this.pending;
    return a ? [a.z, a.features, a.descriptors].reduce((s, t) => s + t.size * 4, 0) : 0;
  }

  protected override extraStateBytes(): number {
    let bytes = this.projector?.bytes() ?? 0;
    for (const t of [this.inputMean, this.inputStd]) bytes += t ? t.size * 4 : 0;
    for (const d of this.domains) bytes += d.bytes();
    return bytes + this.pendingBytes();
  }

  /** The replay memories of the adaptor domains (plain arrays). */
  hostStateBytes(): number {
    return this.domains.reduce((s, d) => s + d.hostBytes(), 0);
  }

  stateParts(): Record<string, number> {
    const optimizer = this.domains.reduce((s, d) => s + d.optimizerBytes(), 0);
    const buffer = this.hostStateBytes();
    return { buffer, optimizer, other: this.stateBytes() - buffer - optimizer };
  }

  override stateBytes(): number {
    return super.stateBytes() + this.hostStateBytes();
  }

  /** Back to the source alone: every adaptor and its domain dropped (the source descriptors stay). */
  override async reset(): Promise<void> {
    this.dropPending();
    await super.reset();
    for (const d of this.domains.splice(1)) d.dispose();
  }

  override dispose(): void {
    this.dropPending();
    for (const d of this.domains.splice(0)) d.dispose();
    this.projector?.dispose();
    this.projector = undefined;
    tf.dispose([this.inputMean, this.inputStd].filter((t): t is tf.Tensor2D => t !== undefined));
    this.inputMean = this.inputStd = undefined;
    super.dispose();
  }
}

/** The base model's classifier weights (the final Dense layer's kernel [F, K] and bias [K]), copied out. */
function headValues(network: Network): { kernel: Float32Array; bias: Float32Array } {
  const layers = network.model.layers;
  const dense = layers[layers.length - 1]!;
  const [kernel, bias] = dense.getWeights();
  if (dense.getClassName() !== 'Dense' || !kernel || kernel.shape[0] !== network.featureDim || kernel.shape[1] !== network.numClasses) {
    throw new CttaError(`EAR could not read the classifier of ${network.model.name}: its last layer is ${dense.getClassName()} "${dense.name}"`, {
      fix: 'use a model whose last layer is the Dense classifier (every zoo model)',
    });
  }
  return { kernel: Float32Array.from(kernel.dataSync()), bias: bias ? Float32Array.from(bias.dataSync()) : new Float32Array(network.numClasses) };
}

/** z-scores of similarities under a domain's statistics; -Infinity everywhere while it has fewer than two. */
function zScoresOf(similarity: Float32Array, domain: Domain): Float64Array {
  const { count, mean, std } = domain.descriptors.stats;
  if (count < 2) return new Float64Array(similarity.length).fill(-Infinity);
  const s = Math.max(std, MIN_SCORE_STD);
  return Float64Array.from(similarity, (v) => (v - mean) / s);
}

/** Each image's domain of highest z-score (ties: the lower index, so the source first). */
function perImageRoutes(zScores: Float64Array[], n: number): Int32Array {
  const routes = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < zScores.length; k++) if (zScores[k]![i]! > zScores[best]![i]!) best = k;
    routes[i] = best;
  }
  return routes;
}

function mean(values: Float64Array): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : -Infinity;
}

/** The domain of highest mean z-score over the batch (ties: the lower index). */
function bestMeanDomain(zScores: Float64Array[]): number {
  let best = 0;
  zScores.forEach((zs, k) => {
    if (mean(zs) > mean(zScores[best]!)) best = k;
  });
  return best;
}

registerMethod({
  name: 'ear',
  description: 'EAR: frozen encoder, HDC (HDFF) shift detection, one small adaptor per detected domain trained on its labels, inputs routed by HDC similarity',
  usesLabels: true,
  fullHead: true,
  options: earOptions,
  create: (o) => new EarMethod(o),
});
