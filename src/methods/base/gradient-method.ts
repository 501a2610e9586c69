/**
 * The base of every method that trains weights by gradient steps (TENT, EATA, SAR, CoTTA, ViDA,
 * and the online continual learning methods). A subclass says three things:
 *  - `trainable()`: which variables it trains (after `setup`);
 *  - `optimizers()`: its optimizer(s), one per parameter group;
 *  - `objective(x)`: its loss and its prediction, from one forward pass.
 * and may hook `prepare` (an async pre-pass, e.g. a teacher's target), `shouldStep` and
 * `afterStep` (EMA teachers, restores, counters).
 *
 * The base owns the rest, as mariodoebler/test-time-adaptation's `base.py` does: the gradients
 * are computed with the prediction in `predict` (one forward/backward per batch, and the
 * prediction is the pre-update one) and applied in `adapt`; optimizers are created lazily (a
 * subclass may need the first batch to choose a rate) and disposed with tfjs's leak worked
 * around; the source snapshot taken after `setup`; `reset` (weights and optimizer state back to
 * the source), `episodic` (reset before every batch), `stateBytes` and `dispose`.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { createOptimizer, disposeOptimizer, type OptimizerKind, type OptimizerOptions } from '../../training/optimizer.js';
import type { MethodContext } from '../types.js';
import { FrozenMethod, tensorBytes } from './frozen-method.js';

export interface OptimizerSpec extends OptimizerOptions {
  kind: OptimizerKind;
  /** The group of trained variables this optimizer updates (default: all of them). */
  variables?: readonly tf.Variable[];
}

export interface Objective {
  /** The loss to differentiate (a scalar). */
  loss: tf.Scalar;
  /** The probabilities returned for this batch (the caller of predict disposes them). */
  prediction: tf.Tensor2D;
}

interface Group {
  optimizer: tf.Optimizer;
  /** Names of the variables in this group; undefined = every trained variable. */
  names?: Set<string>;
}

/** Bytes of the tensors an optimizer holds: its per-variable slots and its scalars. */
export function optimizerBytes(optimizer: tf.Optimizer): number {
  let bytes = 0;
  for (const value of Object.values(optimizer)) {
    if (value instanceof tf.Tensor) bytes += value.isDisposed ? 0 : tensorBytes(value);
    else if (Array.isArray(value)) {
      for (const slot of value) {
        const v = (slot as { variable?: unknown } | undefined)?.variable;
        if (v instanceof tf.Tensor && !v.isDisposed) bytes += tensorBytes(v);
      }
    }
  }
  return bytes;
}

export abstract class GradientMethod<O extends Record<string, unknown> = Record<string, unknown>> extends FrozenMethod<O> {
  /** The variables `objective` is differentiated in. */
  protected params: tf.Variable[] = [];
  private groups?: Group[];
  private pending?: tf.NamedTensorMap;

  protected abstract trainable(): tf.Variable[];
  protected abstract optimizers(): OptimizerSpec | OptimizerSpec[];
  protected abstract objective(x: tf.Tensor4D, prepared: tf.Tensor | undefined): Objective;

  /** Work before the differentiated pass whose result `objective` reads (disposed after it). */
  protected async prepare(_x: tf.Tensor4D): Promise<tf.Tensor | undefined> {
    return undefined;
  }

  /** Whether this batch's gradients are applied (EATA skips batches that select no sample). */
  protected shouldStep(): boolean {
    return true;
  }

  /** After the step (or the skipped step): EMA teachers, restores, counters. */
  protected async afterStep(_x: tf.Tensor4D, _y?: tf.Tensor1D): Promise<void> {}

  override async init(ctx: MethodContext): Promise<void> {
    await super.init(ctx);
    this.params = this.trainable();
    if (this.params.length === 0) {
      throw new CttaError(`${this.name} found nothing to train in this model`, {
        fix: 'use a model with the layers the method trains (e.g. BatchNorm/GroupNorm with gamma/beta)',
      });
    }
    this.keepSource();
  }

  /** Reset before every batch (the `episodic` option of TENT-like methods). */
  protected get episodic(): boolean {
    return (this.options as { episodic?: boolean }).episodic === true;
  }

  override async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    if (this.episodic) await this.startEpisode();
    return super.predict(x); // clears the diagnostics, then `output`
  }

  /** What `episodic` does before each batch: back to the source weights and a fresh optimizer. */
  protected async startEpisode(): Promise<void> {
    this.restoreSource();
  }

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    this.dropPending();
    const prepared = await this.prepare(x);
    let prediction: tf.Tensor2D | undefined;
    try {
      const { value, grads } = tf.variableGrads(() => {
        const r = this.objective(x, prepared);
        prediction = tf.keep(r.prediction);
        return r.loss;
      }, this.params);
      value.dispose();
      this.pending = grads;
    } finally {
      if (prepared) prepared.dispose();
    }
    return prediction!;
  }

  override async adapt(x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void> {
    const grads = this.takePending();
    if (!grads) return;
    try {
      if (this.shouldStep()) this.step(grads);
    } finally {
      tf.dispose(Object.values(grads));
    }
    await this.afterStep(x, y);
  }

  /** The gradients `predict` computed, handed over to the caller (who disposes them). */
  protected takePending(): tf.NamedTensorMap | undefined {
    const grads = this.pending;
    this.pending = undefined;
    return grads;
  }

  /** One optimizer step with `grads` (keyed by variable name), split over the parameter groups. */
  protected step(grads: tf.NamedTensorMap): void {
    this.groups ??= this.createGroups();
    for (const { optimizer, names } of this.groups) {
      if (!names) {
        optimizer.applyGradients(grads);
        continue;
      }
      const part: tf.NamedTensorMap = {};
      for (const [name, g] of Object.entries(grads)) if (names.has(name)) part[name] = g;
      optimizer.applyGradients(part);
    }
  }

  private createGroups(): Group[] {
    const specs = [this.optimizers()].flat();
    return specs.map(({ kind, variables, ...o }) => ({
      optimizer: createOptimizer(kind, o),
      names: variables ? new Set(variables.map((v) => v.name)) : undefined,
    }));
  }

  /** Back to the source weights; optimizer state is dropped unless `keepOptimizer`. */
  protected restoreSource(options: { keepOptimizer?: boolean } = {}): void {
    this.dropPending();
    this.source?.restore(this.network);
    if (!options.keepOptimizer) this.disposeOptimizers();
  }

  override stateBytes(): number {
    let bytes = super.stateBytes();
    for (const { optimizer } of this.groups ?? []) bytes += optimizerBytes(optimizer);
    return bytes;
  }

  override async reset(): Promise<void> {
    this.dropPending();
    await super.reset(); // source weights and statistics
    this.disposeOptimizers();
  }

  override dispose(): void {
    this.dropPending();
    this.disposeOptimizers();
    super.dispose();
  }

  private disposeOptimizers(): void {
    for (const { optimizer } of this.groups ?? []) disposeOptimizer(optimizer);
    this.groups = undefined;
  }

  private dropPending(): void {
    if (this.pending) tf.dispose(Object.values(this.pending));
    this.pending = undefined;
  }
}
