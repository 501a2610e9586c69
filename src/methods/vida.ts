/**
 * ViDA (Liu et al., ICLR 2024): continual test-time adaptation with visual domain adapters.
 *
 * The network carries low-rank and high-rank adapters (src/models/adapters/vida.ts), warmed up
 * on source data beforehand (`ctta pretrain --adapters vida`). A mean teacher as in CoTTA:
 *  - Homeostatic knowledge allotment: u = 0.1 x mean variance of the teacher's logits over 10
 *    augmented views (CoTTA augmentations). If u >= threshold the high-rank (domain-specific)
 *    branch is boosted (s_high = 1 + u, s_low = 1 - u), else the low-rank (domain-shared) one
 *    (s_low = 1 + u, s_high = 1 - u). Scales apply to student and teacher.
 *  - The student takes one Adam step on the soft cross-entropy against the teacher's logits on
 *    the clean batch, with two learning rates (backbone, adapters).
 *  - The teacher follows as an EMA; student weights (adapters included) are restored to their
 *    source/warm-up values with probability `restore` per element.
 * Prediction: the teacher's output on the clean batch. BatchNorm uses batch statistics.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { cottaAugment } from '../augment/cotta.js';
import { CttaError } from '../errors.js';
import { VIDA_ADAPTER_DEFAULTS, VidaAdapters } from '../models/adapters/vida.js';
import { loadModel } from '../models/checkpoint.js';
import type { Network } from '../models/network.js';
import { WeightSnapshot } from '../models/snapshot.js';
import { createOptimizer, disposeOptimizer } from '../training/optimizer.js';
import type { Rng } from '../util/rng.js';
import { familyDefault } from './family-defaults.js';
import { registerMethod } from './registry.js';
import { emaUpdate, softCrossEntropy, stochasticRestore } from './teacher-student.js';
import type { AdaptationMethod, MethodContext } from './types.js';

export const vidaOptions = z.strictObject({
  /**
   * Checkpoint with warmed-up adapters for this model (default: the scenario's model directory
   * + `-vida`, e.g. models/fmnist-resnet8-vida), or 'none' for fresh zero-initialised adapters.
   */
  warmup: z.string().optional(),
  /** Uncertainty threshold of the knowledge allotment (default per family). */
  threshold: z.number().min(0).optional(),
  /** Adam learning rate of the backbone weights (default per family). */
  lr: z.number().positive().optional(),
  /** Adam learning rate of the adapter weights (default per family). */
  adapterLr: z.number().positive().optional(),
  /** Teacher EMA momentum. */
  momentum: z.number().min(0).max(1).default(0.999),
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

export class VidaMethod implements AdaptationMethod {
  readonly name = 'vida';
  readonly usesLabels = false;
  private student!: Network;
  private teacher?: Network;
  private source?: WeightSnapshot;
  private backboneOptimizer?: tf.Optimizer;
  private adapterOptimizer?: tf.Optimizer;
  private pending?: tf.NamedTensorMap;
  private rng!: Rng;
  /** The student's adapter variables: the parameter group with its own learning rate. */
  private adapterVariables = new Set<tf.Variable>();
  private settings!: { threshold: number; lr: number; adapterLr: number };
  /** Uncertainty of the last batch (inspection, tests). */
  lastUncertainty = 0;

  constructor(readonly options: VidaOptions) {}

  async init(ctx: MethodContext): Promise<void> {
    const o = this.options;
    this.settings = {
      threshold: o.threshold ?? familyDefault('vida', 'threshold', ctx.family),
      lr: o.lr ?? familyDefault('vida', 'lr', ctx.family),
      adapterLr: o.adapterLr ?? familyDefault('vida', 'adapterLr', ctx.family),
    };
    this.rng = ctx.rng;
    this.student = ctx.network;
    if (!this.student.adapters) await this.attachAdapters(ctx);
    this.student.setNormStatistics('batch');
    this.teacher = await this.student.clone();
    this.source = new WeightSnapshot(this.student);
    this.adapterVariables = new Set(this.student.adapters!.namedVariables().values());
    this.newOptimizers();
  }

  /** Adapters from the warm-up checkpoint (checked to share this backbone), or fresh ones. */
  private async attachAdapters(ctx: MethodContext): Promise<void> {
    const o = this.options;
    if (o.warmup === 'none') {
      VidaAdapters.create(this.student, { layers: o.layers, lowRank: o.lowRank, highRankFactor: o.highRankFactor }, ctx.rng.fork('adapters')).attach(this.student);
      return;
    }
    const path = o.warmup ?? (ctx.modelPath ? `${ctx.modelPath.replace(/[/\\]+$/, '')}-vida` : undefined);
    if (!path || !existsSync(path)) {
      throw new CttaError(`ViDA needs adapters warmed up on source data; ${path ? `${path} does not exist` : 'no warm-up checkpoint was given'}`, {
        fix: `create it with \`ctta pretrain --adapters vida --from ${ctx.modelPath ?? '<model>'} --out ${path ?? '<dir>'}\`, point --set vida.warmup=<dir> at one, or use --set vida.warmup=none (no warm-up)`,
      });
    }
    const { network: warm } = await loadModel(path);
    try {
      if (!warm.adapters) throw new CttaError(`${path} has no adapters`, { fix: 'use a checkpoint written by `ctta pretrain --adapters vida`' });
      const mine = this.student.namedWeights();
      for (const [name, v] of warm.model.weights.map((w) => [w.originalName, w.read()] as const)) {
        const same = mine.has(name) && mine.get(name)!.shape.join() === v.shape.join() && tf.tidy(() => tf.all(tf.equal(mine.get(name)!, v)).dataSync()[0] === 1);
        if (!same) {
          throw new CttaError(`the adapters in ${path} were warmed up on a different backbone (weight ${name} differs from the scenario's model)`, {
            fix: `warm up adapters for this model: ctta pretrain --adapters vida --from ${ctx.modelPath ?? '<model>'} --out <dir>`,
          });
        }
      }
      warm.adapters.copyTo(this.student);
    } finally {
      warm.dispose();
    }
  }

  private newOptimizers(): void {
    this.backboneOptimizer = createOptimizer('adam', { lr: this.settings.lr });
    this.adapterOptimizer = createOptimizer('adam', { lr: this.settings.adapterLr });
  }

  async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    this.dropPending();
    // Homeostatic allotment from the teacher's disagreement across augmented views.
    const views = tf.tidy(() => tf.stack(Array.from({ length: this.options.views }, () => this.teacher!.logits(cottaAugment(x, this.rng, { noiseStd: this.options.noiseStd })))) as tf.Tensor3D);
    const u = viewUncertainty(views);
    views.dispose();
    this.lastUncertainty = (await u.data())[0]!;
    u.dispose();
    const scales = homeostaticScales(this.lastUncertainty, this.settings.threshold, this.options.scaleRule);
    (this.student.adapters as VidaAdapters).scales = { ...scales };
    (this.teacher!.adapters as VidaAdapters).scales = { ...scales };

    const target = this.teacher!.logits(x);
    const { value, grads } = tf.variableGrads(() => softCrossEntropy(this.student.logits(x), target), this.student.trainableVariables());
    value.dispose();
    this.pending = grads;
    const probs = tf.softmax(target);
    target.dispose();
    return probs;
  }

  async adapt(): Promise<void> {
    if (!this.pending) return;
    // Split the gradients by parameter group: adapters get their own (smaller) learning rate.
    const backbone: tf.NamedTensorMap = {};
    const adapters: tf.NamedTensorMap = {};
    for (const v of this.student.trainableVariables()) (this.adapterVariables.has(v) ? adapters : backbone)[v.name] = this.pending[v.name]!;
    this.backboneOptimizer!.applyGradients(backbone);
    this.adapterOptimizer!.applyGradients(adapters);
    this.dropPending();
    emaUpdate(this.teacher!, this.student, this.options.momentum);
    stochasticRestore(this.student, this.source!, this.options.restore, this.rng);
  }

  stateBytes(): number {
    const trained = this.student.trainableVariables().reduce((s, p) => s + p.size * 4, 0);
    const adapters = (this.student.adapters as VidaAdapters).bytes();
    // Adapters (student), teacher copy with its adapters, source snapshot, Adam's two moments.
    return adapters + this.teacher!.weightBytes() + adapters + this.source!.bytes() + 2 * trained;
  }

  async reset(): Promise<void> {
    this.dropPending();
    this.source!.restore(this.student);
    this.source!.restore(this.teacher!);
    this.disposeOptimizers();
    this.newOptimizers();
  }

  dispose(): void {
    this.dropPending();
    this.source?.dispose();
    this.teacher?.dispose();
    this.disposeOptimizers();
  }

  private disposeOptimizers(): void {
    if (this.backboneOptimizer) disposeOptimizer(this.backboneOptimizer);
    if (this.adapterOptimizer) disposeOptimizer(this.adapterOptimizer);
    this.backboneOptimizer = this.adapterOptimizer = undefined;
  }

  private dropPending(): void {
    if (this.pending) tf.dispose(Object.values(this.pending));
    this.pending = undefined;
  }
}

registerMethod({
  name: 'vida',
  description: 'ViDA: low/high-rank domain adapters scaled by teacher uncertainty, mean teacher, two learning rates, stochastic restore',
  usesLabels: false,
  options: vidaOptions,
  create: (o) => new VidaMethod(o),
});
