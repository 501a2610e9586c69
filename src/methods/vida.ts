/**
 * ViDA (Liu et al., ICLR 2024): continual test-time adaptation with visual domain adapters.
 *
 * The network carries low-rank and high-rank adapters (src/models/adapters/vida.ts), warmed up
 * on source data beforehand (`ctta pretrain --adapters vida`). A mean teacher as in CoTTA:
 *  - Homeostatic knowledge allotment: u = 0.1 x mean variance of the teacher's logits over 10
 *    augmented views (CoTTA augmentations). If u >= threshold the high-rank (domain-specific)
 *    branch is boosted (s_high = 1 + u, s_low = 1 - u), else the low-rank (domain-shared) one
 *    (s_low = 1 + u, s_high = 1 - u). Scales apply to student and teacher.
 *  - The student takes one step on the soft cross-entropy against the teacher's logits on the
 *    clean batch (ImageNet code: symmetric 0.5/0.5), with two learning rates (backbone, adapters).
 *  - The teacher follows as an EMA; student weights (adapters included) are restored to their
 *    source/warm-up values with probability `restore` per element.
 * Prediction: the teacher's output on the clean batch. BatchNorm uses batch statistics.
 *
 * Per-dataset defaults from the authors' configs (Yangsenqiao/vida): CIFAR-10 Adam, lr 1e-4,
 * adapters 1e-5, threshold 0.05, restore 0.1 (the class default the CIFAR code uses); CIFAR-100
 * lr 3e-4, adapters 1e-6; ImageNet (their ViT-B/16 config) SGD with Nesterov momentum 0.9, lr
 * 5e-7, adapters 2e-7, adapter teacher momentum 0.8, threshold 0.2, no restore (commented out in
 * their ImageNet code), symmetric loss.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { cottaAugment } from '../augment/cotta.js';
import { CttaError } from '../errors.js';
import { VIDA_ADAPTER_DEFAULTS, VidaAdapters } from '../models/adapters/vida.js';
import type { OptimizerSpec } from './base/gradient-method.js';
import { MeanTeacherMethod } from './base/mean-teacher.js';
import { registerMethod } from './registry.js';
import type { MethodContext } from './types.js';

export const vidaOptions = z.strictObject({
  /**
   * Checkpoint with warmed-up adapters for this model (default: the scenario's model directory
   * + `-vida`, e.g. models/fmnist-resnet8-vida), or 'none' for fresh zero-initialised adapters.
   */
  warmup: z.string().optional(),
  /** Uncertainty threshold of the knowledge allotment (per dataset, see `defaults`). */
  threshold: z.number().min(0).default(0.05),
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  /** Learning rate of the backbone weights. */
  lr: z.number().positive().default(1e-4),
  /** Learning rate of the adapter weights. */
  adapterLr: z.number().positive().default(1e-5),
  /** SGD momentum and Nesterov (the ImageNet code: 0.9, Nesterov). */
  sgdMomentum: z.number().min(0).max(1).default(0.9),
  nesterov: z.boolean().default(false),
  /** Teacher EMA momentum of the backbone weights, and of the adapters (ImageNet code: 0.8). */
  momentum: z.number().min(0).max(1).default(0.999),
  adapterMomentum: z.number().min(0).max(1).default(0.999),
  /** 'soft': CE against the teacher (CIFAR code); 'symmetric': 0.5/0.5 both ways (ImageNet code). */
  loss: z.enum(['soft', 'symmetric']).default('soft'),
  /** Per-element probability of restoring a student weight after each step. */
  restore: z.number().min(0).max(1).default(0.1),
  /** Augmented teacher views for the uncertainty. */
  views: z.number().int().min(2).default(10),
  noiseStd: z.number().min(0).default(0.005),
  /**
   * 'paper' scales both branches; 'authors-code' reproduces the released code, where only the
   * low-rank scale ever changes (the high-rank one stays 1).
   */
  scaleRule: z.enum(['paper', 'authors-code']).default('paper'),
  /** Adapter layout, used only with warmup 'none'. */
  layers: z.string().default(VIDA_ADAPTER_DEFAULTS.layers),
  lowRank: z.number().int().positive().default(VIDA_ADAPTER_DEFAULTS.lowRank),
  highRankFactor: z.number().positive().default(VIDA_ADAPTER_DEFAULTS.highRankFactor),
  /** Initial std of fresh down projections: 1/r^2 (the authors' injection code) or 1/r. */
  initStd: z.enum(['1/r^2', '1/r']).default(VIDA_ADAPTER_DEFAULTS.initStd),
});

type VidaOptions = z.output<typeof vidaOptions>;

/** The branch scales for uncertainty `u` (the paper's rule, or the released code's). */
export function homeostaticScales(u: number, threshold: number, rule: VidaOptions['scaleRule']): { low: number; high: number } {
  const boostHigh = u >= threshold;
  const scales = boostHigh ? { low: 1 - u, high: 1 + u } : { low: 1 + u, high: 1 - u };
  return rule === 'paper' ? scales : { low: scales.low, high: 1 };
}

/** 0.1 x mean over samples and classes of the (unbiased) variance across views of the logits. */
export function viewUncertainty(viewLogits: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => {
    const n = viewLogits.shape[0];
    const { variance } = tf.moments(viewLogits, 0);
    return tf.mul(tf.mean(variance), (0.1 * n) / (n - 1)) as tf.Scalar;
  });
}

export class VidaMethod extends MeanTeacherMethod<VidaOptions> {
  /** The branch scales right after init; `reset` puts them back (the next batch's allotment reads them). */
  private sourceScales = { low: 1, high: 1 };
  /** Uncertainty of the last batch (inspection, tests). */
  lastUncertainty = 0;

  constructor(options: VidaOptions) {
    super('vida', options);
  }

  protected override async setup(ctx: MethodContext): Promise<void> {
    if (!this.network.adapters) await this.attachAdapters(ctx);
    this.sourceScales = { ...(this.network.adapters as VidaAdapters).scales };
    await this.createTeacher();
  }

  /** Adapters from the warm-up checkpoint (the run set-up checks it shares this backbone), or fresh ones. */
  private async attachAdapters(ctx: MethodContext): Promise<void> {
    const o = this.options;
    if (o.warmup === 'none') {
      const layout = { layers: o.layers, lowRank: o.lowRank, highRankFactor: o.highRankFactor, initStd: o.initStd };
      VidaAdapters.create(this.network, layout, ctx.rng.fork('adapters')).attach(this.network);
      return;
    }
    if (!ctx.companion) {
      throw new CttaError('ViDA needs adapters warmed up on source data, and this run cannot load checkpoints', {
        fix: 'give the method context a `companion` loader (ctta run does), or --set vida.warmup=none',
      });
    }
    const warm = await ctx.companion('vida', o.warmup);
    try {
      if (!warm.adapters) throw new CttaError('the ViDA warm-up checkpoint has no adapters', { fix: 'use a checkpoint written by `ctta pretrain --adapters vida`' });
      warm.adapters.copyTo(this.network);
    } finally {
      warm.dispose();
    }
  }

  private adapterVariables(): tf.Variable[] {
    return [...this.network.adapters!.namedVariables().values()];
  }

  /** Two parameter groups: the backbone and the adapters, each with its own rate. */
  protected optimizers(): OptimizerSpec[] {
    const o = this.options;
    const adapters = new Set(this.adapterVariables());
    const common = { kind: o.optimizer, momentum: o.sgdMomentum, nesterov: o.nesterov } as const;
    return [
      { ...common, lr: o.lr, variables: this.params.filter((v) => !adapters.has(v)) },
      { ...common, lr: o.adapterLr, variables: [...adapters] },
    ];
  }

  /** Homeostatic allotment from the teacher's disagreement across views; returns the teacher's logits. */
  protected override async prepare(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const views = tf.tidy(() => tf.stack(Array.from({ length: this.options.views }, () => this.teacher.logits(cottaAugment(x, this.ctx.rng, { noiseStd: this.options.noiseStd })))) as tf.Tensor3D);
    const u = viewUncertainty(views);
    views.dispose();
    this.lastUncertainty = (await u.data())[0]!;
    u.dispose();
    const scales = homeostaticScales(this.lastUncertainty, this.options.threshold, this.options.scaleRule);
    (this.network.adapters as VidaAdapters).scales = { ...scales };
    (this.teacher.adapters as VidaAdapters).scales = { ...scales };
    this.diagnose('uncertainty', this.lastUncertainty);
    this.diagnose('highBoosted', this.lastUncertainty >= this.options.threshold ? 1 : 0);
    return this.teacher.logits(x);
  }

  /** The teacher's adapters move at their own rate (0.8 in the authors' ImageNet code). */
  protected override teacherMomentum(name: string): number {
    return name.startsWith('vida/') ? this.options.adapterMomentum : this.options.momentum;
  }

  /** The adapters this method attached to the run's network. */
  protected override extraStateBytes(): number {
    return (this.network.adapters as VidaAdapters).bytes();
  }

  override async reset(): Promise<void> {
    await super.reset();
    (this.network.adapters as VidaAdapters).scales = { ...this.sourceScales };
    (this.teacher.adapters as VidaAdapters).scales = { ...this.sourceScales };
  }
}

registerMethod({
  name: 'vida',
  description: 'ViDA: low/high-rank domain adapters scaled by teacher uncertainty, mean teacher, two learning rates, stochastic restore',
  usesLabels: false,
  options: vidaOptions,
  defaults: {
    cifar10: { optimizer: 'adam', lr: 1e-4, adapterLr: 1e-5, threshold: 0.05, restore: 0.1, loss: 'soft' },
    cifar100: { optimizer: 'adam', lr: 3e-4, adapterLr: 1e-6, threshold: 0.05, restore: 0.1, loss: 'soft' },
    imagenet: { optimizer: 'sgd', nesterov: true, lr: 5e-7, adapterLr: 2e-7, adapterMomentum: 0.8, threshold: 0.2, restore: 0, loss: 'symmetric' },
  },
  create: (o) => new VidaMethod(o),
});
