/**
 * TAME, task-agnostic continual learning using multiple experts (Zhu, Majzoubi, Jain and
 * Choromanska, "TAME: Task Agnostic Continual Learning using Multiple Experts", arXiv 2210.03869,
 * v2 2024; read: the abstract, arxiv.org/abs/2210.03869), in a single-pass online variant:
 * labels are revealed after each prediction (OnlineLearner) and every stream batch is seen once,
 * where the paper trains each task for many epochs. Constants of the switching rule are the
 * project's issue "TAME" (the paper's body could not be read from here).
 *
 * From the paper:
 *  - one expert network per task and no task ids: the active expert trains on the stream, and
 *    the onset of a new task is read from "a statistically-significant deviation in the value of
 *    the loss function";
 *  - at a shift TAME switches to an existing expert that fits the new data, or adds a new one;
 *  - a selector network, trained on "a small subset of data drawn uniformly at random" labelled
 *    with the expert that learnt each sample, forwards every test sample to one expert.
 *
 * Per labelled batch (x, y), in `learn`:
 *  1. loss = mean CE of the active expert on (x, y), BatchNorm on the batch's statistics as in a
 *     training step (not folded into the running ones);
 *  2. the expert's ShiftDetector (./tame/shift-detector.ts): EWMA of its losses (alpha 0.2), a
 *     shift when the EWMA exceeds mean + 3 std of its last 100 recorded losses; a loss above that
 *     threshold is an outlier;
 *  3. a shift: every other expert's loss on (x, y); the expert with the lowest loss among those
 *     whose loss is within their own threshold becomes active, else a new expert is spawned (at
 *     most `maxExperts`; with the pool full, the expert with the lowest loss is repurposed: its
 *     detector starts over). The held batches (below) and (x, y) then
 *     train the new active expert, one step each, and enter the memory under its id;
 *  4. an outlier batch without a shift is held (at most `hold`, host memory, uint8): not trained
 *     on, not stored, until either the shift fires (3) or an ordinary batch comes, which drops
 *     them (a one-off);
 *  5. an ordinary batch: one optimiser step of the active expert (no replay: an expert sees its
 *     own task only), then, with 2+ experts, one selector step on (x, active id) plus
 *     `selectorBatch` (image, expert id) pairs drawn from the reservoir memory, then (x, active
 *     id) enters the memory (never replayed in its own step).
 * `predict`/`evaluate`: with one expert, its softmax; otherwise the selector's argmax picks an
 * expert per image and the image gets that expert's softmax over all K classes. Inference mode
 * throughout: neither changes state.
 *
 * What an expert is (`mode`):
 *  - 'network' (default): a whole network; expert 0 is the run's network, a new expert starts as
 *    the run's network was at init (`spawnFrom: 'initial'`) or as a copy of the active one
 *    (`'active'`), with its own weights, BatchNorm statistics and optimiser. The shipped OCL
 *    scenario (fmnist-class-incremental) starts from an untrained network: there is no backbone
 *    worth freezing, so each expert trains a whole network and a new task never overwrites an
 *    old expert (the paper's separate expert networks). Memory: one network per expert.
 *  - 'head': heads (linear, or `headHidden`-wide MLPs) over all K classes on the run's network's
 *    features. `backbone: 'frozen'` (the default in this mode) trains heads only: the reading of
 *    "small experts on a shared frozen backbone", for a trained checkpoint; with a scratch
 *    network its features stay random. `'train'` trains the shared backbone with the active
 *    head (old heads then drift with it). `selectorInput: 'features'` lets the selector read the
 *    frozen features instead of pixels.
 *
 * Assumptions (ours unless said):
 *  - single pass, one step per batch and expert (paper: epochs per task);
 *  - detector: alpha 0.2, 100 losses, 3 std (the issue); the EWMA is tested against the
 *    statistics of raw losses (no false alarm on 10k stationary batches); outliers wait outside
 *    the statistics, and the EWMA of a left expert goes back to its last ordinary value;
 *    `minHistory` 10, `minStd` 0.05 (shift-detector.ts says why);
 *  - holding outlier batches (`hold` 20): single-pass, one SGD step on a new task's batch already
 *    lowers the old expert's loss (in tests/tame.test.ts' stream, a scratch 2-class expert went
 *    from 3.9 nats on the new task's first batch to 2.2 after one step), so the jump fades
 *    before the EWMA crosses; held, the old expert stays untouched by the new task, and the new
 *    expert still learns those batches;
 *  - losses with the batch's BatchNorm statistics (as training sees the batch), for active and
 *    candidate experts: a scratch network's running statistics lag its weights, and its
 *    inference-mode loss swung from 2 to 34 nats within fmnist-class-incremental's first task
 *    (read as shifts), and its early values inflated every threshold for the rest of the run;
 *  - returning: the expert's raw loss on the batch must be within its threshold (the issue's
 *    rule; the EWMA continued with that loss would accept losses up to 5 times the threshold,
 *    i.e. experts that never saw the task); among those the lowest loss wins;
 *  - no pruning (the paper prunes experts and selector online to bound their size): `maxExperts`
 *    caps the pool instead;
 *  - selector: an MLP (256 hidden, ReLU) on the flattened image, Adam 1e-3, one step per batch
 *    on the batch + 32 memory samples, trained online from the second expert on; memory of 200
 *    images, exact reservoir (the paper trains its selector on a uniform subset);
 *  - experts: SGD lr 0.1, no momentum, no weight decay, as ER in this repo (Mai et al.'s
 *    framework);
 *  - a new expert starts from the run's initial weights (head mode: expert 0's initial head).
 *
 * Diagnostics per batch: `loss` (the active expert's, before any switch), `smoothed`,
 * `threshold` (once defined), `expert` (active after the batch), `experts`, `switched`,
 * `spawned`, `released` (held batches trained at a shift), `held`; when trained: `trainLoss`,
 * `selectorLoss`, `replayed`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { CttaError } from '../errors.js';
import { OnlineLearner, type LabelledBatch, type LearnerOptimizer } from './base/online-learner.js';
import { registerMethod } from './registry.js';
import type { ExpertPool } from './tame/expert-pool.js';
import { HeadExperts } from './tame/head-experts.js';
import { NetworkExperts } from './tame/network-experts.js';
import type { ParamGroupSpec } from './tame/param-group.js';
import { Selector } from './tame/selector.js';
import { SHIFT_DETECTOR_DEFAULTS as D, ShiftDetector } from './tame/shift-detector.js';

export const tameOptions = z
  .strictObject({
    /** What an expert is: a whole network, or a head on the shared backbone. */
    mode: z.enum(['network', 'head']).default('network'),
    /** Head mode: train the shared backbone with the active head, or keep it frozen. */
    backbone: z.enum(['frozen', 'train']).default('frozen'),
    /** Head mode: hidden width of each expert head (0 = linear). */
    headHidden: z.number().int().min(0).default(0),
    /** A new expert starts from the initial expert, or copies the active one. */
    spawnFrom: z.enum(['initial', 'active']).default('initial'),
    /** The most experts there can be (the paper prunes instead). */
    maxExperts: z.number().int().min(1).default(10),
    /** Shift detector: EWMA weight of the newest loss. */
    alpha: z.number().gt(0).max(1).default(D.alpha),
    /** Shift detector: losses per expert the threshold is computed from. */
    window: z.number().int().min(2).default(D.window),
    /** Shift detector: threshold = mean + sigmas x std. */
    sigmas: z.number().positive().default(D.sigmas),
    /** Shift detector: no shift before an expert has this many losses in its history. */
    minHistory: z.number().int().min(2).default(D.minHistory),
    /** Shift detector: floor under the std. */
    minStd: z.number().min(0).default(D.minStd),
    /** Outlier batches held back from training until the detector decides (0 = train on every batch). */
    hold: z.number().int().min(0).default(20),
    /** Experts' optimiser. */
    optimizer: z.enum(['sgd', 'adam']).default('sgd'),
    lr: z.number().positive().default(0.1),
    momentum: z.number().min(0).max(1).default(0),
    weightDecay: z.number().min(0).default(0),
    /** Images of (x, expert id) the selector's reservoir memory holds. */
    memorySize: z.number().int().positive().default(200),
    /** Memory samples in each selector step (with the stream batch). */
    selectorBatch: z.number().int().positive().default(32),
    /** Selector hidden width (0 = linear). */
    selectorHidden: z.number().int().min(0).default(256),
    /** Selector input: the flattened image, or the frozen backbone's features (head mode, frozen backbone). */
    selectorInput: z.enum(['pixels', 'features']).default('pixels'),
    /** Selector Adam rate. */
    selectorLr: z.number().positive().default(1e-3),
  })
  .refine((o) => o.minHistory <= o.window, { message: 'must be at most window', path: ['minHistory'] })
  .refine((o) => o.selectorInput === 'pixels' || (o.mode === 'head' && o.backbone === 'frozen'), {
    message: "'features' needs mode 'head' with backbone 'frozen' (features that do not change)",
    path: ['selectorInput'],
  });
export type TameOptions = z.output<typeof tameOptions>;

/** A stream batch held back from training (an outlier for the active expert), as stored images. */
interface HeldBatch {
  images: Uint8Array;
  labels: Int32Array;
}

export class TameMethod extends OnlineLearner<TameOptions> {
  private pool?: ExpertPool;
  private selector?: Selector;
  private detectors: ShiftDetector[] = [];
  private active = 0;
  /** Outlier batches since the last ordinary one, oldest first (at most `hold`). */
  private held: HeldBatch[] = [];

  constructor(options: TameOptions) {
    super('tame', options);
  }

  /** The active expert (the one being trained). */
  get activeExpert(): number {
    return this.active;
  }

  /** Experts so far. */
  get expertCount(): number {
    return this.pool?.size ?? 0;
  }

  protected override async setup(): Promise<void> {
    const o = this.options;
    this.createMemory(o.memorySize, 'reservoir');
    const spec = this.expertSpec();
    this.pool =
      o.mode === 'network'
        ? new NetworkExperts(this.name, this.network, () => this.source!, spec)
        : new HeadExperts(this.name, this.network, { hidden: o.headHidden, backbone: o.backbone, spec, rng: this.ctx.rng });
    const [h, w, c] = this.network.inputShape;
    this.selector = new Selector(this.name, {
      inputDim: o.selectorInput === 'features' ? this.network.featureDim : h * w * c,
      hidden: o.selectorHidden,
      outputs: o.maxExperts,
      spec: { kind: 'adam', lr: o.selectorLr, weightDecay: 0 },
      rng: this.ctx.rng,
    });
    this.detectors = [this.newDetector()];
    this.active = 0;
  }

  /** TAME trains through its experts' and selector's own optimisers, not the base's. */
  protected override trainable(): tf.Variable[] {
    return [];
  }

  protected optimizer(): LearnerOptimizer {
    return this.expertSpec();
  }

  private expertSpec(): ParamGroupSpec {
    const { optimizer: kind, lr, momentum, weightDecay } = this.options;
    return { kind, lr, momentum, weightDecay };
  }

  private newDetector(): ShiftDetector {
    const { alpha, window, sigmas, minHistory, minStd } = this.options;
    return new ShiftDetector({ alpha, window, sigmas, minHistory, minStd });
  }

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return this.routed(x);
  }

  /** Held-out images: the same routing; nothing here writes state (inference mode throughout). */
  override async evaluate(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return this.routed(x);
  }

  /** The selector's expert per image, or expert 0 for all while there is only one. */
  private routed(x: tf.Tensor4D): tf.Tensor2D {
    const pool = this.pool!;
    if (pool.size === 1) return pool.predict(x);
    const input = this.selectorInput(x);
    try {
      return pool.predict(x, this.selector!.choose(input, pool.size));
    } finally {
      input.dispose();
    }
  }

  /** The selector's input for a batch: flattened pixels, or the (frozen) backbone's features. */
  private selectorInput(x: tf.Tensor4D): tf.Tensor2D {
    if (this.options.selectorInput === 'features') return this.network.features(x);
    return tf.reshape(x, [x.shape[0], -1]) as tf.Tensor2D;
  }

  protected async learn({ x, y, labels }: LabelledBatch): Promise<void> {
    const pool = this.pool!;
    const loss = this.measured(pool.losses([this.active], x, y))[0]!;
    const seen = this.detectors[this.active]!.observe(loss);
    this.diagnose('loss', loss);
    this.diagnose('smoothed', seen.smoothed);
    if (Number.isFinite(seen.threshold)) this.diagnose('threshold', seen.threshold);
    let switched = 0;
    let spawned = 0;
    let released = 0;
    if (seen.shifted) {
      const before = this.active;
      spawned = (await this.afterShift(x, y)) ? 1 : 0;
      switched = this.active !== before ? 1 : 0;
      // The held batches were the new task's first ones: the expert it now has learns them first.
      const held = this.held.splice(0);
      for (const h of held) this.trainStored(h);
      released = held.length;
      this.learnBatch(x, y, this.toStored(x), labels, held);
    } else if (seen.outlier && this.options.hold > 0) {
      // A batch the active expert finds anomalous: neither trained on nor stored until the
      // detector decides (a new task, or a one-off), so the expert does not adapt to a new task
      // before the shift is called and the loss jump stays visible.
      this.held.push({ images: this.toStored(x), labels: Int32Array.from(labels) });
      if (this.held.length > this.options.hold) this.held.shift();
    } else {
      this.held.length = 0; // the outliers were a one-off: dropped
      this.learnBatch(x, y, this.toStored(x), labels, []);
    }
    this.diagnose('expert', this.active);
    this.diagnose('experts', pool.size);
    this.diagnose('switched', switched);
    this.diagnose('spawned', spawned);
    this.diagnose('released', released);
    this.diagnose('held', this.held.length);
  }

  /**
   * The ordinary step: the active expert trains on (x, y), the selector trains (with 2+
   * experts), then the batch (and the released ones) enter the memory under the active expert.
   */
  private learnBatch(x: tf.Tensor4D, y: tf.Tensor1D, images: Uint8Array, labels: ArrayLike<number>, released: HeldBatch[]): void {
    this.diagnose('trainLoss', this.pool!.train(this.active, x, y));
    if (this.pool!.size > 1) this.trainSelector(x);
    for (const h of released) this.memory!.update(h.images, new Int32Array(h.labels.length).fill(this.active));
    this.memory!.update(images, new Int32Array(labels.length).fill(this.active));
  }

  /** One step of the active expert on a held batch. */
  private trainStored(h: HeldBatch): void {
    const n = h.labels.length;
    const x = this.fromStored(h.images, n);
    const y = tf.tensor1d(h.labels, 'int32');
    try {
      this.pool!.train(this.active, x, y);
    } finally {
      tf.dispose([x, y]);
    }
  }

  /**
   * After a shift: the old expert that accepts the batch with the lowest loss, else a new
   * expert, else (at `maxExperts`) the expert with the lowest loss of all, its history cleared
   * (repurposed). Returns whether an expert was spawned.
   */
  private async afterShift(x: tf.Tensor4D, y: tf.Tensor1D): Promise<boolean> {
    const pool = this.pool!;
    const others = [...Array(pool.size).keys()].filter((e) => e !== this.active);
    const losses = this.measured(pool.losses(others, x, y));
    let best = -1;
    let bestLoss = Infinity;
    others.forEach((e, i) => {
      if (this.detectors[e]!.accepts(losses[i]!) && losses[i]! < bestLoss) [best, bestLoss] = [e, losses[i]!];
    });
    if (best >= 0) {
      this.detectors[best]!.resume(bestLoss);
      this.active = best;
      return false;
    }
    if (pool.size < this.options.maxExperts) {
      this.active = await pool.spawn(this.options.spawnFrom === 'initial' ? 'initial' : this.active);
      this.detectors.push(this.newDetector());
      return true;
    }
    const all = [...Array(pool.size).keys()];
    const everyLoss = this.measured(pool.losses(all, x, y));
    const lowest = all.reduce((a, b) => (everyLoss[b]! < everyLoss[a]! ? b : a), 0);
    this.detectors[lowest]!.clear();
    this.active = lowest;
    return false;
  }

  /** One selector step on the stream batch (labelled with the active expert) and a memory sample. */
  private trainSelector(x: tf.Tensor4D): void {
    const drawn = this.memory!.sample(this.options.selectorBatch);
    const m = drawn.labels.length;
    const n = x.shape[0];
    const targets = Int32Array.from({ length: n + m }, (_, i) => (i < n ? this.active : drawn.labels[i - n]!));
    const images = m > 0 ? this.fromStored(drawn.images, m) : undefined;
    const batch = images ? (tf.concat([x, images]) as tf.Tensor4D) : x;
    const input = this.selectorInput(batch);
    const t = tf.tensor1d(targets, 'int32');
    try {
      this.diagnose('selectorLoss', this.selector!.step(input, t, this.pool!.size));
      this.diagnose('replayed', m);
    } finally {
      tf.dispose([input, t, ...(images ? [images, batch] : [])]);
    }
  }

  /** Losses checked finite (a diverged expert is reported like a diverged training loss). */
  private measured(losses: number[]): number[] {
    const bad = losses.find((l) => !Number.isFinite(l));
    if (bad !== undefined) throw new CttaError(`${this.name}: an expert's loss is ${bad}`, { fix: `lower the learning rate (--set ${this.name}.lr=...)` });
    return losses;
  }

  private detectorBytes(): number {
    return this.detectors.reduce((sum, d) => sum + d.bytes(), 0);
  }

  private heldBytes(): number {
    return this.held.reduce((sum, h) => sum + h.images.byteLength + h.labels.byteLength, 0);
  }

  override hostStateBytes(): number {
    return super.hostStateBytes() + this.detectorBytes() + this.heldBytes();
  }

  /** Replay memory (and held batches), optimisers, experts (copies or heads), selector, detectors, and the source copy `reset` returns to. */
  override stateParts(): Record<string, number> {
    const base = super.stateParts();
    return {
      buffer: (base.buffer ?? 0) + this.heldBytes(),
      optimizer: (base.optimizer ?? 0) + (this.pool?.optimizerBytes() ?? 0) + (this.selector?.optimizerBytes() ?? 0),
      experts: this.pool?.bytes() ?? 0,
      selector: this.selector?.bytes() ?? 0,
      detector: this.detectorBytes(),
      other: base.other ?? 0,
    };
  }

  override async reset(): Promise<void> {
    await super.reset(); // the run's network (expert 0 in network mode, the backbone in head mode), memory
    this.pool?.reset();
    this.selector?.reset();
    this.detectors = [this.newDetector()];
    this.active = 0;
    this.held = [];
  }

  override dispose(): void {
    this.pool?.dispose();
    this.selector?.dispose();
    this.pool = undefined;
    this.selector = undefined;
    super.dispose();
  }
}

registerMethod({
  name: 'tame',
  description: 'TAME (online single-pass variant): one expert per task, task shifts detected from a 3-sigma jump of the EWMA loss, switch to an old expert or spawn one; a selector trained on a reservoir memory routes predictions; labels after prediction',
  usesLabels: true,
  fullHead: true,
  options: tameOptions,
  create: (o) => new TameMethod(o),
});
