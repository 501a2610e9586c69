/**
 * SAR (Niu et al., "Towards Stable Test-Time Adaptation in Dynamic Wild World", ICLR 2023):
 * sharpness-aware and reliable entropy minimisation of the norm layers' affine parameters, with
 * model recovery.
 *
 * Per batch (as the authors' sar.py with their SAM wrapper, sam.py):
 * 1. Forward the batch (BatchNorm with the batch's statistics; GroupNorm/LayerNorm as they are);
 *    the softmax of this pass is the returned prediction. Reliable samples: entropy H < E0
 *    (`eMargin`, 0.4 ln K). Gradient g of the mean entropy over the reliable samples.
 * 2. Ascend: theta + e with e = rho * g / (||g|| + 1e-12), ||.|| over all trained parameters.
 * 3. Forward the whole batch again at theta + e; keep the samples reliable in step 1 whose new
 *    entropy is still < E0; gradient g' of their mean entropy.
 * 4. Back to theta, and one SGD-with-momentum step with g'.
 * 5. Recovery: a moving average of the step-3 loss (starts empty, first value taken as is, then
 *    0.9 * ema + 0.1 * loss; batches with no sample left in step 3 leave it unchanged). When it
 *    is below `resetConstant` (0.2) after the step, the weights go back to the source ones.
 *
 * With no reliable sample, g = 0 and e = 0, and the step uses a zero gradient (momentum still
 * moves the weights, as in the authors' code).
 *
 * Quirks of the authors' code, kept or offered as options:
 * - Recovery keeps the loss average (their `forward` assigns the returned value after `reset()`
 *   cleared it), so it is kept here too; an explicit `reset()` clears it.
 * - Their recovery reloads the SAM wrapper's state, not the inner SGD's, so momentum buffers
 *   survive a recovery. Default: fresh optimizer (the paper's "restore the model");
 *   `keepMomentumOnRecovery: true` reproduces the code.
 * - Their `collect_params` skips the top stage (ResNet layer4, ViT blocks 9-11).
 *   Default: all norm layers (the paper's description); `freezeLastStage: true` skips the norm
 *   layers of the last `s<k>_` stage and everything after it (zoo naming).
 *
 * Learning rate: the authors use SGD 0.00025 for ResNet-50 at batch 64, scaled to
 * 0.00025 * 2 * batch / 64 below batch 32. No small-image setting exists in the paper; the
 * default for `small` is 0.005, the same authors' SGD rate for CIFAR-10 in EATA (same
 * parameters, same entropy loss, same momentum), with the same small-batch rule.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { CttaError } from '../errors.js';
import type { Network } from '../models/network.js';
import type { NormLayer } from '../models/norm.js';
import { GradientMethod, type Objective, type OptimizerSpec } from './base/gradient-method.js';
import { sampleEntropies } from './eata.js';
import { registerMethod } from './registry.js';

export const sarOptions = z.strictObject({
  /** SGD learning rate; unset: `baseLr`, times 2 * batch / 64 below batch 32 (the authors' rule). */
  lr: z.number().positive().optional(),
  /** The rate at batch >= 32 (per dataset, see `defaults`). */
  baseLr: z.number().positive().default(0.005),
  /** SGD momentum (the authors' code: 0.9, no Nesterov). */
  momentum: z.number().min(0).max(1).default(0.9),
  nesterov: z.boolean().default(false),
  /** SAM neighbourhood radius. */
  rho: z.number().min(0).default(0.05),
  /** Entropy margin E0 in nats; default 0.4 * ln(numClasses). */
  eMargin: z.number().positive().optional(),
  /** Recover the source weights when the moving average of the second-step loss falls below this. */
  resetConstant: z.number().min(0).default(0.2),
  /** Keep SGD momentum buffers through a recovery (the authors' code does, see above). */
  keepMomentumOnRecovery: z.boolean().default(false),
  /** Do not train the last stage's norm layers (the authors' code skips ResNet layer4). */
  freezeLastStage: z.boolean().default(false),
  /** Reset model, optimizer and loss average before every batch. */
  episodic: z.boolean().default(false),
});

export type SarOptions = z.output<typeof sarOptions>;


/** The authors' learning-rate rule: the base rate at batch >= 32, else base * 2 * batch / 64. */
export function sarLearningRate(base: number, batchSize: number): number {
  return batchSize < 32 ? (base / 64) * batchSize * 2 : base;
}

/** SAM's ascent step e = rho * g / (||g|| + 1e-12), with the norm over all tensors together. */
export function samPerturbation(grads: tf.Tensor[], rho: number): tf.Tensor[] {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
    const scale = tf.div(rho, tf.add(norm, 1e-12));
    return grads.map((g) => tf.mul(g, scale));
  });
}

/** One update of the recovery average: the first value as is, then 0.9 * ema + 0.1 * value. */
export function updateLossEma(ema: number | null, value: number): number {
  return ema === null ? value : 0.9 * ema + 0.1 * value;
}

/** Norm layers SAR trains: all, or (freezeLastStage) those before the last `s<k>_` stage. */
export function sarTrainedNorms(network: Network, freezeLastStage: boolean): NormLayer[] {
  if (!freezeLastStage) return network.norms;
  const stageOf = (n: NormLayer) => {
    const m = /^s(\d+)_/.exec(n.name);
    return m ? Number(m[1]) : undefined;
  };
  const stages = network.norms.map(stageOf).filter((s): s is number => s !== undefined);
  if (stages.length === 0) {
    throw new CttaError('SAR freezeLastStage: no norm layer is named by stage (s<k>_...)', {
      fix: 'use a model from the ctta zoo, or freezeLastStage: false',
    });
  }
  const last = Math.max(...stages);
  const first = network.norms.findIndex((n) => stageOf(n) === last);
  return network.norms.slice(0, first);
}

/** Mean entropy over the samples whose mask is 1 (0 when none: the gradient is then zero). */
function maskedMeanEntropy(entropies: tf.Tensor1D, mask: Float32Array, count: number): tf.Scalar {
  return tf.div(tf.sum(tf.mul(entropies, tf.tensor1d(mask))), Math.max(count, 1)) as tf.Scalar;
}

export class SarMethod extends GradientMethod<SarOptions> {
  private eMargin = 0;
  private lr?: number;
  /** 1 for the samples reliable in the first pass of the current batch. */
  private reliable = new Float32Array(0);
  private reliableCount = 0;
  private ema: number | null = null;
  /** Running counts: batches adapted, reliable samples (first pass), samples in the second loss, recoveries. */
  readonly counts = { batches: 0, reliable: 0, secondStep: 0, recoveries: 0 };

  constructor(options: SarOptions) {
    super('sar', options);
  }

  protected override async setup(): Promise<void> {
    this.eMargin = this.options.eMargin ?? 0.4 * Math.log(this.network.numClasses);
    this.lr = this.options.lr;
    this.network.setNormStatistics('batch');
  }

  /** The moving average of the second-step loss (null until the first batch with a reliable sample). */
  get lossEma(): number | null {
    return this.ema;
  }

  /** The learning rate in use (fixed by the first batch's size unless given). */
  get learningRate(): number | undefined {
    return this.lr;
  }

  /** The trained parameters (norm gamma/beta, minus the last stage with freezeLastStage). */
  get trainedVariables(): readonly tf.Variable[] {
    return this.params;
  }

  protected trainable(): tf.Variable[] {
    return sarTrainedNorms(this.network, this.options.freezeLastStage).flatMap((n) => n.affineVariables());
  }

  protected optimizers(): OptimizerSpec {
    return { kind: 'sgd', lr: this.lr!, momentum: this.options.momentum, nesterov: this.options.nesterov };
  }

  protected override async startEpisode(): Promise<void> {
    await this.reset();
  }

  /** First pass: the prediction, and the mean entropy of the reliable samples. */
  protected objective(x: tf.Tensor4D): Objective {
    this.lr ??= sarLearningRate(this.options.baseLr, x.shape[0]);
    const logits = this.network.logits(x);
    const entropies = sampleEntropies(logits);
    const h = entropies.dataSync();
    this.reliable = new Float32Array(h.length);
    this.reliableCount = 0;
    for (let i = 0; i < h.length; i++) {
      if (h[i]! < this.eMargin) {
        this.reliable[i] = 1;
        this.reliableCount++;
      }
    }
    return { loss: maskedMeanEntropy(entropies, this.reliable, this.reliableCount), prediction: tf.softmax(logits) };
  }

  /** Steps 2-5 of the header: ascend, second gradient, step from theta, recovery. */
  override async adapt(x: tf.Tensor4D): Promise<void> {
    const grads = this.takePending();
    if (!grads) return;
    const first = this.params.map((p) => grads[p.name]!);
    const e = samPerturbation(first, this.options.rho);
    tf.dispose(first);
    const saved = this.params.map((p) => tf.keep(p.clone()));
    tf.tidy(() => this.params.forEach((p, i) => p.assign(tf.add(p, e[i]!))));
    tf.dispose(e);

    // Gradient at theta + e over the samples still reliable there.
    let count = 0;
    let second: ReturnType<typeof tf.variableGrads>;
    try {
      second = tf.variableGrads(() => {
        const entropies = sampleEntropies(this.network.logits(x));
        const h = entropies.dataSync();
        const mask = new Float32Array(h.length);
        for (let i = 0; i < h.length; i++) {
          if (this.reliable[i] === 1 && h[i]! < this.eMargin) {
            mask[i] = 1;
            count++;
          }
        }
        return maskedMeanEntropy(entropies, mask, count);
      }, this.params);
    } finally {
      // Back to theta before the step (also if the second pass failed).
      tf.tidy(() => this.params.forEach((p, i) => p.assign(saved[i]!)));
      tf.dispose(saved);
    }
    const loss = second.value.dataSync()[0]!;
    second.value.dispose();
    try {
      this.step(second.grads);
    } finally {
      tf.dispose(Object.values(second.grads));
    }

    this.counts.batches++;
    this.counts.reliable += this.reliableCount;
    this.counts.secondStep += count;
    if (count > 0) this.ema = updateLossEma(this.ema, loss);
    const recover = this.ema !== null && this.ema < this.options.resetConstant;
    // Model recovery: source weights; the loss average is kept (see the header).
    if (recover) {
      this.restoreSource({ keepOptimizer: this.options.keepMomentumOnRecovery });
      this.counts.recoveries++;
    }
    this.diagnose('reliable', this.reliableCount);
    this.diagnose('secondStep', count);
    this.diagnose('recovered', recover ? 1 : 0);
  }

  override async reset(): Promise<void> {
    await super.reset();
    this.ema = null;
  }
}

registerMethod({
  name: 'sar',
  description: 'SAR: sharpness-aware (SAM, rho 0.05) entropy minimisation on reliable samples, norm gamma/beta, recovery when the loss average < 0.2',
  usesLabels: false,
  options: sarOptions,
  // ImageNet: the authors' main.py; small images: EATA's CIFAR-10 SGD rate (see the header).
  defaults: { cifar10: { baseLr: 0.005 }, imagenet: { baseLr: 0.00025 } },
  create: (o) => new SarMethod(o),
});
