/**
 * CoTTA (Wang et al., CVPR 2022): continual test-time adaptation with a weight-averaged teacher.
 *
 * Three networks: the student (the run's network, every weight trained), the teacher (an
 * exponential moving average of the student) and the anchor (the frozen source model). All use
 * batch statistics in BatchNorm, as in the authors' code. Per batch:
 *  - if the anchor's mean max-probability is below AP, the teacher's target is the mean of its
 *    logits over 32 augmented views, else the teacher's logits on the batch itself;
 *  - the student takes one step on the soft cross-entropy against the (detached) target;
 *  - the teacher moves towards the student, then every student weight element goes back to its
 *    source value with probability `restore`.
 * The teacher's target is the prediction (computed before the update, as in the authors' code).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { cottaAugment } from '../augment/cotta.js';
import type { Network } from '../models/network.js';
import { WeightSnapshot } from '../models/snapshot.js';
import { createOptimizer, disposeOptimizer } from '../training/optimizer.js';
import type { Rng } from '../util/rng.js';
import { familyDefault } from './family-defaults.js';
import { emaUpdate, softCrossEntropy, stochasticRestore } from './teacher-student.js';
import { registerMethod } from './registry.js';
import type { AdaptationMethod, MethodContext } from './types.js';

export const cottaOptions = z.strictObject({
  /** Default per family (see `ctta list methods`). */
  optimizer: z.enum(['adam', 'sgd']).optional(),
  lr: z.number().positive().optional(),
  /** Anchor-confidence threshold below which the target averages augmented views. */
  ap: z.number().min(0).max(1).optional(),
  /** Teacher EMA momentum. */
  momentum: z.number().min(0).max(1).default(0.999),
  /** Per-element probability of restoring a weight to its source value after each step. */
  restore: z.number().min(0).max(1).default(0.01),
  /** Augmented views averaged for the target. */
  views: z.number().int().positive().default(32),
  /** Noise of the augmentation (0.005 in the CIFAR code). */
  noiseStd: z.number().min(0).default(0.005),
  softAugment: z.boolean().default(false),
  /** SGD momentum (ImageNet config). */
  sgdMomentum: z.number().min(0).max(1).default(0.9),
});

export class CottaMethod implements AdaptationMethod {
  readonly name = 'cotta';
  readonly usesLabels = false;
  private student!: Network;
  private teacher?: Network;
  private anchor?: Network;
  private source?: WeightSnapshot;
  private optimizer?: tf.Optimizer;
  private pending?: tf.NamedTensorMap;
  private rng!: Rng;
  private settings!: { optimizer: 'adam' | 'sgd'; lr: number; ap: number };
  /** How many batches used the augmented target (for the record). */
  augmentedBatches = 0;

  constructor(readonly options: z.output<typeof cottaOptions>) {}

  async init(ctx: MethodContext): Promise<void> {
    const o = this.options;
    this.settings = {
      optimizer: o.optimizer ?? familyDefault('cotta', 'optimizer', ctx.family),
      lr: o.lr ?? familyDefault('cotta', 'lr', ctx.family),
      ap: o.ap ?? familyDefault('cotta', 'ap', ctx.family),
    };
    this.rng = ctx.rng;
    this.student = ctx.network;
    this.student.setNormStatistics('batch');
    this.teacher = await this.student.clone();
    this.anchor = await this.student.clone();
    this.source = new WeightSnapshot(this.student);
    this.optimizer = this.newOptimizer();
  }

  private newOptimizer(): tf.Optimizer {
    const { optimizer, lr } = this.settings;
    return createOptimizer(optimizer, { lr, momentum: this.options.sgdMomentum });
  }

  async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    this.dropPending();
    const target = await this.teacherTarget(x);
    const { value, grads } = tf.variableGrads(() => softCrossEntropy(this.student.logits(x), target), this.student.trainableVariables());
    value.dispose();
    this.pending = grads;
    const probs = tf.softmax(target);
    target.dispose();
    return probs;
  }

  /** The teacher's logits on the batch, or averaged over augmented views when the anchor is unsure. */
  private async teacherTarget(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const confidence = tf.tidy(() => tf.mean(tf.max(tf.softmax(this.anchor!.logits(x)), 1)));
    const c = (await confidence.data())[0]!;
    confidence.dispose();
    if (c >= this.settings.ap) return this.teacher!.logits(x);
    this.augmentedBatches++;
    let sum = tf.zeros([x.shape[0], this.student.numClasses]) as tf.Tensor2D;
    for (let v = 0; v < this.options.views; v++) {
      const next = tf.tidy(() => {
        const view = cottaAugment(x, this.rng, { noiseStd: this.options.noiseStd, soft: this.options.softAugment });
        return tf.add(sum, this.teacher!.logits(view)) as tf.Tensor2D;
      });
      sum.dispose();
      sum = next;
    }
    const mean = tf.div(sum, this.options.views) as tf.Tensor2D;
    sum.dispose();
    return mean;
  }

  async adapt(): Promise<void> {
    if (!this.pending) return;
    this.optimizer!.applyGradients(this.pending);
    this.dropPending();
    emaUpdate(this.teacher!, this.student, this.options.momentum);
    stochasticRestore(this.student, this.source!, this.options.restore, this.rng);
  }

  stateBytes(): number {
    const trained = this.student.trainableVariables().reduce((s, p) => s + p.size * 4, 0);
    const moments = trained * (this.settings.optimizer === 'adam' ? 2 : 1);
    return this.teacher!.weightBytes() + this.anchor!.weightBytes() + this.source!.bytes() + moments;
  }

  async reset(): Promise<void> {
    this.dropPending();
    this.source!.restore(this.student);
    this.source!.restore(this.teacher!);
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = this.newOptimizer();
  }

  dispose(): void {
    this.dropPending();
    this.source?.dispose();
    this.teacher?.dispose();
    this.anchor?.dispose();
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = undefined;
  }

  private dropPending(): void {
    if (this.pending) tf.dispose(Object.values(this.pending));
    this.pending = undefined;
  }
}

registerMethod({
  name: 'cotta',
  description: 'CoTTA: EMA teacher (augmentation-averaged when the source model is unsure) trains all weights; stochastic restore',
  usesLabels: false,
  options: cottaOptions,
  create: (o) => new CottaMethod(o),
});
