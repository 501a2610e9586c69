/**
 * The base of online continual-learning methods that train the network on the labelled stream
 * (ER, OnPro, UER): the prequential protocol of Mai et al. / Mammoth, where each batch is first
 * predicted and its labels revealed afterwards, in `adapt(x, y)`.
 *
 * What it fixes, so every subclass behaves the same:
 *  - Predictions (`predict`, `evaluate`) run the network in inference mode (BatchNorm running
 *    statistics) and change nothing; training steps run BatchNorm in batch mode and fold each
 *    training batch into the running statistics with PyTorch's momentum 0.1 (`model.train()`).
 *  - The head spans every class of the dataset (OCL codebases' single head): `predict` returns
 *    the softmax over all K logits, unseen classes included (they are trained down by the CE of
 *    the seen ones, as in the authors' code).
 *  - No task ids: `newClasses` is true for a batch holding a class never seen before, which is
 *    how "a new task begins" reaches a method (`task` counts those events; the first batch is
 *    task 0). With a class-incremental stream whose task's classes all appear in its first batch
 *    this equals the task index; a class of the same task first seen in a later batch starts a
 *    "task" too (documented for OnPro's task-0 rule).
 *  - The replay memory (`this.memory`), counted in `stateBytes` at its stored uint8 size, emptied
 *    by `reset`; weight decay as L2 added to the gradients (PyTorch's `weight_decay` of SGD/Adam).
 *
 * A subclass gives `optimizer()` and `learn(batch)`, which calls `this.step(loss)` once per
 * optimiser step (or sums `this.gradients(loss)` of several passes and calls `applyGradients`); `trainable()` defaults to every trainable weight of the network.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { createOptimizer, disposeOptimizer, type OptimizerKind, type OptimizerOptions } from '../../training/optimizer.js';
import { ReplayBuffer, type ReplayPolicy } from '../replay/replay-buffer.js';
import type { MethodContext } from '../types.js';
import { FrozenMethod } from './frozen-method.js';
import { optimizerBytes } from './gradient-method.js';

export interface LearnerOptimizer extends OptimizerOptions {
  kind: OptimizerKind;
  /** L2 coefficient added to every gradient (PyTorch `weight_decay`; 0 = none). */
  weightDecay?: number;
}

/** A labelled stream batch as `learn` sees it. */
export interface LabelledBatch {
  x: tf.Tensor4D;
  /** Dataset class of each image (int32 tensor, and the same values in JS). */
  y: tf.Tensor1D;
  labels: Int32Array;
  /** The batch holds a class never seen before (a task boundary, for methods that need one). */
  newClasses: boolean;
  /** Number of new-class events before this batch's (0 during the first task). */
  task: number;
  /** Index of this batch since the last new-class event (0 = the batch that started the task). */
  batchInTask: number;
}

/** Images drawn from the replay memory, as tensors (disposed by `withReplay`). */
export interface ReplayBatch {
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  /** Number of images drawn (fewer than asked while the memory holds fewer). */
  size: number;
}

/** BatchNorm momentum while training: PyTorch's default (weight of the new batch). */
const BN_MOMENTUM = 0.1;

export abstract class OnlineLearner<O extends Record<string, unknown> = Record<string, unknown>> extends FrozenMethod<O> {
  override readonly usesLabels: boolean = true;
  override readonly labelSpace: 'head' | 'dataset' = 'dataset';
  protected params: tf.Variable[] = [];
  /** Classes whose labels have been revealed so far, in order of appearance. */
  protected readonly seen: number[] = [];
  protected memory?: ReplayBuffer;
  private optimizerState?: tf.Optimizer;
  private tasks = -1;
  private sinceNew = 0;

  protected abstract optimizer(): LearnerOptimizer;
  /** One labelled batch: the method's steps (`this.step`) and its memory update. */
  protected abstract learn(batch: LabelledBatch): Promise<void>;

  /** What is trained; default: every trainable weight of the network (a full fine-tune). */
  protected trainable(): tf.Variable[] {
    return this.network.trainableVariables();
  }

  override async init(ctx: MethodContext): Promise<void> {
    const { network, numClasses, headClasses } = ctx;
    if (network.numClasses !== numClasses || headClasses.some((c, i) => c !== i)) {
      throw new CttaError(`${this.name} trains a head over all ${numClasses} classes of the dataset, but the model's head has ${network.numClasses} outputs`, {
        fix: 'start from a zoo architecture ("model": {"arch": "resnet18_reduced", "init": "scratch"}) or a checkpoint over every class',
      });
    }
    await super.init(ctx);
    this.params = this.trainable();
    this.keepSource();
  }

  /** Creates the replay memory (call in `setup`): images of the network's input size, uint8. */
  protected createMemory(capacity: number, policy: ReplayPolicy = 'reservoir'): ReplayBuffer {
    const [h, w, c] = this.network.inputShape;
    this.memory = new ReplayBuffer({ capacity, imageBytes: h * w * c, policy, rng: this.ctx.rng });
    return this.memory;
  }

  override async adapt(x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void> {
    if (!y) {
      throw new CttaError(`${this.name} learns from the labels revealed after each prediction, and the stream gave none`, {
        fix: 'run it on a scenario whose labels the runner passes (every scenario does; a custom runner must call adapt(x, y))',
      });
    }
    const labels = Int32Array.from(await y.data());
    const newClasses = labels.some((c) => !this.seen.includes(c));
    if (this.tasks < 0) this.tasks = 0; // the first batch starts task 0
    else if (newClasses) this.tasks++;
    this.sinceNew = newClasses ? 0 : this.sinceNew + 1;
    const yInt = y.dtype === 'int32' ? y : (tf.cast(y, 'int32') as tf.Tensor1D);
    try {
      await this.learn({ x, y: yInt, labels, newClasses, task: this.tasks, batchInTask: this.sinceNew });
    } finally {
      if (yInt !== y) yInt.dispose();
    }
    for (const c of labels) if (!this.seen.includes(c)) this.seen.push(c);
  }

  /**
   * One optimiser step on `loss` (built inside, so its tape is recorded) with BatchNorm in
   * training mode; returns the loss value.
   */
  protected step(loss: () => tf.Scalar): number {
    const { value, grads } = this.gradients(loss);
    try {
      this.applyGradients(grads);
    } finally {
      tf.dispose(Object.values(grads));
    }
    return value;
  }

  /**
   * The gradients of `loss` with respect to the trained variables (keyed by variable name; the
   * caller disposes them), from one forward and backward pass with BatchNorm in training mode
   * (the pass folds its batch statistics into the running ones). A method whose step sums
   * several passes (OnPro) calls it once per pass, so one pass's activations are held at a time.
   */
  protected gradients(loss: () => tf.Scalar): { value: number; grads: tf.NamedTensorMap } {
    this.network.setNormStatistics('batch', { momentum: BN_MOMENTUM });
    try {
      const { value: v, grads } = tf.variableGrads(loss, this.params);
      const value = v.dataSync()[0]!;
      v.dispose();
      if (!Number.isFinite(value)) {
        tf.dispose(Object.values(grads));
        throw new CttaError(`${this.name}: the training loss is ${value}`, { fix: `lower the learning rate (--set ${this.name}.lr=...)` });
      }
      return { value, grads };
    } finally {
      this.network.setNormStatistics('running');
    }
  }

  /** One optimiser update with `grads` (not disposed here), weight decay added as L2. */
  protected applyGradients(grads: tf.NamedTensorMap): void {
    const spec = this.optimizer();
    const decay = spec.weightDecay ?? 0;
    const decayed: tf.Tensor[] = [];
    const update: tf.NamedTensorMap = { ...grads };
    if (decay > 0) {
      for (const p of this.params) {
        const g = grads[p.name];
        if (!g) continue;
        const d = tf.tidy(() => g.add(p.mul(decay)));
        decayed.push(d);
        update[p.name] = d;
      }
    }
    try {
      this.optimizerState ??= createOptimizer(spec.kind, spec);
      this.optimizerState.applyGradients(update);
    } finally {
      tf.dispose(decayed);
    }
  }

  /** The stream batch as the memory stores it: uint8 pixels (the stream's values are k/255). */
  protected toStored(x: tf.Tensor4D): Uint8Array {
    const ints = tf.tidy(() => tf.round(x.mul(255)).clipByValue(0, 255).toInt());
    const out = Uint8Array.from(ints.dataSync());
    ints.dispose();
    return out;
  }

  /**
   * Draws up to `count` images uniformly without replacement from the memory, gives them to `use`
   * as tensors (undefined while the memory is empty) and disposes them afterwards.
   */
  protected withReplay<T>(count: number, use: (replay: ReplayBatch | undefined) => T): T {
    const drawn = this.memory!.sample(count);
    const size = drawn.labels.length;
    if (size === 0) return use(undefined);
    const replay = { x: this.fromStored(drawn.images, size), y: tf.tensor1d(drawn.labels, 'int32'), size };
    try {
      return use(replay);
    } finally {
      replay.x.dispose();
      replay.y.dispose();
    }
  }

  /** Images from the memory as a float batch in [0, 1]. */
  protected fromStored(images: Uint8Array, n: number): tf.Tensor4D {
    const [h, w, c] = this.network.inputShape;
    return tf.tidy(() => tf.tensor4d(images, [n, h, w, c], 'int32').toFloat().div(255));
  }

  /** Bytes held outside tensors: the replay memory. */
  hostStateBytes(): number {
    return this.memory?.stateBytes() ?? 0;
  }

  /** The state by kind, for the OCL tables: replay memory, optimizer slots, other (the source copy `reset` returns to). */
  stateParts(): Record<string, number> {
    return {
      buffer: this.memory?.stateBytes() ?? 0,
      optimizer: this.optimizerState ? optimizerBytes(this.optimizerState) : 0,
      other: super.stateBytes(),
    };
  }

  override stateBytes(): number {
    return Object.values(this.stateParts()).reduce((a, b) => a + b, 0);
  }

  override async reset(): Promise<void> {
    await super.reset();
    this.memory?.clear();
    this.seen.length = 0;
    this.tasks = -1;
    this.sinceNew = 0;
    this.disposeOptimizer();
  }

  override dispose(): void {
    this.disposeOptimizer();
    super.dispose();
  }

  private disposeOptimizer(): void {
    if (this.optimizerState) disposeOptimizer(this.optimizerState);
    this.optimizerState = undefined;
  }
}
