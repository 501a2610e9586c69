/**
 * CoTTA (Wang et al., CVPR 2022): continual test-time adaptation with a weight-averaged teacher.
 *
 * Three networks: the student (the run's network, every weight trained), the teacher (an
 * exponential moving average of the student) and the anchor (the frozen source model). All use
 * batch statistics in BatchNorm, as in the authors' code. Per batch:
 *  - if the anchor's mean max-probability is below AP, the teacher's target is the mean of its
 *    logits over 32 augmented views, else the teacher's logits on the batch itself;
 *  - the student takes one step on the soft cross-entropy against the (detached) target
 *    (ImageNet code: the symmetric 0.5/0.5 version, `loss: 'symmetric'`);
 *  - the teacher moves towards the student, then every student weight element goes back to its
 *    source value with probability `restore`.
 * The teacher's target is the prediction (computed before the update, as in the authors' code).
 * Per-dataset defaults (qinenergy/cotta configs): CIFAR-10 Adam 1e-3, AP 0.92, restore 0.01;
 * CIFAR-100 AP 0.72; ImageNet SGD 0.01 with Nesterov momentum 0.9, AP 0.1, restore 0.001,
 * symmetric loss.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { cottaAugment } from '../augment/cotta.js';
import type { Network } from '../models/network.js';
import type { OptimizerSpec } from './base/gradient-method.js';
import { MeanTeacherMethod } from './base/mean-teacher.js';
import { registerMethod } from './registry.js';

export const cottaOptions = z.strictObject({
  /** Optimizer, rate, AP, restore and loss are set per dataset (`defaults` below). */
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  lr: z.number().positive().default(1e-3),
  /** Anchor-confidence threshold below which the target averages augmented views. */
  ap: z.number().min(0).max(1).default(0.92),
  /** Teacher EMA momentum. */
  momentum: z.number().min(0).max(1).default(0.999),
  /** Per-element probability of restoring a weight to its source value after each step. */
  restore: z.number().min(0).max(1).default(0.01),
  /** Augmented views averaged for the target. */
  views: z.number().int().positive().default(32),
  /** Noise of the augmentation (0.005 in the CIFAR code). */
  noiseStd: z.number().min(0).default(0.005),
  softAugment: z.boolean().default(false),
  /** SGD momentum and Nesterov (the ImageNet code: 0.9, Nesterov). */
  sgdMomentum: z.number().min(0).max(1).default(0.9),
  nesterov: z.boolean().default(false),
  /** 'soft': CE against the teacher (CIFAR code); 'symmetric': 0.5/0.5 both ways (ImageNet code). */
  loss: z.enum(['soft', 'symmetric']).default('soft'),
});
type CottaOptions = z.output<typeof cottaOptions>;

export class CottaMethod extends MeanTeacherMethod<CottaOptions> {
  private anchor!: Network;
  /** How many batches used the augmented target (for the record). */
  augmentedBatches = 0;

  constructor(options: CottaOptions) {
    super('cotta', options);
  }

  protected override async setup(): Promise<void> {
    await this.createTeacher();
    this.anchor = await this.copyNetwork();
  }

  protected optimizers(): OptimizerSpec {
    const o = this.options;
    return { kind: o.optimizer, lr: o.lr, momentum: o.sgdMomentum, nesterov: o.nesterov };
  }

  /** The teacher's logits on the batch, or averaged over augmented views when the anchor is unsure. */
  protected override async prepare(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const confidence = tf.tidy(() => tf.mean(tf.max(tf.softmax(this.anchor.logits(x)), 1)));
    const c = (await confidence.data())[0]!;
    confidence.dispose();
    const augmented = c < this.options.ap;
    this.diagnose('anchorConfidence', c);
    this.diagnose('augmented', augmented ? 1 : 0);
    if (!augmented) return this.teacher.logits(x);
    this.augmentedBatches++;
    let sum = tf.zeros([x.shape[0], this.network.numClasses]) as tf.Tensor2D;
    for (let v = 0; v < this.options.views; v++) {
      const next = tf.tidy(() => {
        const view = cottaAugment(x, this.ctx.rng, { noiseStd: this.options.noiseStd, soft: this.options.softAugment });
        return tf.add(sum, this.teacher.logits(view)) as tf.Tensor2D;
      });
      sum.dispose();
      sum = next;
    }
    const mean = tf.div(sum, this.options.views) as tf.Tensor2D;
    sum.dispose();
    return mean;
  }
}

registerMethod({
  name: 'cotta',
  description: 'CoTTA: EMA teacher (augmentation-averaged when the source model is unsure) trains all weights; stochastic restore',
  usesLabels: false,
  options: cottaOptions,
  defaults: {
    cifar10: { optimizer: 'adam', lr: 1e-3, ap: 0.92, restore: 0.01, loss: 'soft' },
    cifar100: { optimizer: 'adam', lr: 1e-3, ap: 0.72, restore: 0.01, loss: 'soft' },
    imagenet: { optimizer: 'sgd', lr: 0.01, nesterov: true, ap: 0.1, restore: 0.001, loss: 'symmetric' },
  },
  create: (o) => new CottaMethod(o),
});
