/**
 * RoTTA (Yuan et al., CVPR 2023, "Robust Test-Time Adaptation in Dynamic Scenarios"), as in the
 * authors' code (BIT-DA/RoTTA: `core/adapter/rotta.py`, `core/utils/memory.py`,
 * `core/utils/bn_layers.py`, `configs/adapter/rotta.yaml`).
 *
 * Two networks: the student (the run's network; only BatchNorm gamma/beta train) and the teacher
 * (its EMA, which predicts). BatchNorm in both is RoTTA's robust BN (./rotta/robust-bn.ts): at
 * prediction time it normalises with the stored global statistics and changes nothing; during an
 * update it first moves them towards the statistics of the batch it sees by alpha and normalises
 * with the result. The batch that moves them is the MEMORY BANK's (the code puts both networks in
 * train mode only inside `update_model`): the teacher's statistics move with the clean memory
 * images, the student's with their strongly augmented copies. The incoming batch never touches
 * statistics.
 *
 * Per incoming batch:
 *  - the teacher (stored statistics) predicts; its argmax is the pseudo-label and the entropy of
 *    its softmax (with the code's +1e-6 in the log) the uncertainty;
 *  - each image in turn is offered to the CSTU memory bank (./rotta/memory-bank.ts), and every
 *    `updateFrequency` images of the stream (counted across batches, so possibly mid-batch) the
 *    model is updated from the bank as it is at that image:
 *      loss = mean_i w_i * CE(student(aug(m_i)), softmax(teacher(m_i))),
 *      w_i = exp(-a_i) / (1 + exp(-a_i)),  a_i = age_i / capacity,
 *    one Adam step on the student's BN affine parameters, then teacher <- (1 - nu) teacher + nu
 *    student.
 * The augmentation is CoTTA's (`cottaAugment`): the RoTTA code's `get_tta_transforms` is the same
 * transform (same ranges, noise 0.005, one draw per batch), so the repo's port is reused.
 *
 * lambda_t and lambda_u weigh the two terms of the bank's replacement score (timeliness and
 * normalised uncertainty), not terms of the loss.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { cottaAugment } from '../augment/cotta.js';
import type { Network } from '../models/network.js';
import { tensorBytes } from './base/frozen-method.js';
import { GradientMethod, type Objective, type OptimizerSpec } from './base/gradient-method.js';
import { registerMethod } from './registry.js';
import { CategoryBalancedMemory, timelinessWeight } from './rotta/memory-bank.js';
import { withRobustNorm } from './rotta/robust-bn.js';

export const rottaOptions = z.strictObject({
  /** Adam rate (betas 0.9/0.999, no weight decay, as `configs/adapter/rotta.yaml`). */
  lr: z.number().positive().default(1e-3),
  /** Teacher EMA rate: teacher <- (1 - nu) * teacher + nu * student. */
  nu: z.number().min(0).max(1).default(0.001),
  /** Robust BN: weight of a batch's statistics when folded into the global ones. */
  alpha: z.number().min(0).max(1).default(0.05),
  /** Memory bank size (also the age normaliser of the score and of the loss weights). */
  capacity: z.number().int().positive().default(64),
  /** Update after every this many stream images (the code: the same as the bank size). */
  updateFrequency: z.number().int().positive().default(64),
  /** Weight of timeliness in the bank's replacement score. */
  lambdaT: z.number().min(0).default(1),
  /** Weight of uncertainty in the bank's replacement score. */
  lambdaU: z.number().min(0).default(1),
  /** Noise of the student's strong augmentation (0.005, `get_tta_transforms`' default). */
  noiseStd: z.number().min(0).default(0.005),
  /** The augmentation's narrower "soft" ranges (the RoTTA code uses the normal ones). */
  softAugment: z.boolean().default(false),
});
type RottaOptions = z.output<typeof rottaOptions>;

/** The teacher's reading of a batch, from `predict`, that `adapt` files the images under. */
interface Pending {
  labels: Int32Array;
  uncertainty: Float32Array;
}

export class RottaMethod extends GradientMethod<RottaOptions> {
  protected teacher!: Network;
  private bank!: CategoryBalancedMemory<tf.Tensor3D>;
  /** Stream images offered to the bank since init/reset (the code's `current_instance`). */
  private seen = 0;
  private reading?: Pending;
  /** The memory items' loss weights while an update's objective runs. */
  private instanceWeights?: tf.Tensor1D;
  /** Names of the trained variables (the teacher's EMA follows exactly these). */
  private trainedNames: string[] = [];

  constructor(options: RottaOptions) {
    super('rotta', options);
  }

  protected override async setup(): Promise<void> {
    // init has set 'running' statistics: robust BN's evaluation mode, for both networks.
    this.teacher = await this.copyNetwork();
    this.bank = this.createBank();
  }

  private createBank(): CategoryBalancedMemory<tf.Tensor3D> {
    // The code files items under the dataset's classes; the teacher can only predict the head's,
    // so the bank balances over those (the same for a full-class model).
    const o = this.options;
    return new CategoryBalancedMemory(o.capacity, this.network.numClasses, o.lambdaT, o.lambdaU);
  }

  /** BatchNorm gamma and beta only: the code swaps every BatchNorm for a trainable robust BN, nothing else trains. */
  protected trainable(): tf.Variable[] {
    const trained = this.network.norms.filter((n) => n.kind === 'batch').flatMap((n) => n.affineVariables());
    const set = new Set(trained);
    this.trainedNames = [...this.network.namedTrainables()].filter(([, v]) => set.has(v)).map(([name]) => name);
    return trained;
  }

  protected optimizers(): OptimizerSpec {
    return { kind: 'adam', lr: this.options.lr, beta1: 0.9, beta2: 0.999 };
  }

  /** The update's loss: student on the augmented bank against the teacher on the clean bank, age-weighted. */
  protected objective(strong: tf.Tensor4D, target: tf.Tensor | undefined): Objective {
    const t = target as tf.Tensor2D;
    const student = this.network.logits(strong);
    const perItem = tf.neg(tf.sum(tf.mul(tf.softmax(t), tf.logSoftmax(student)), 1));
    const loss = tf.mean(tf.mul(perItem, this.instanceWeights!)) as tf.Scalar;
    return { loss, prediction: tf.softmax(t) as tf.Tensor2D };
  }

  protected override evaluationNetwork(): Network {
    return this.teacher;
  }

  /** The teacher's prediction with its stored statistics (nothing changes); keeps its reading for `adapt`. */
  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const probs = tf.tidy(() => tf.softmax(this.teacher.logits(x)) as tf.Tensor2D);
    this.reading = await this.read(probs);
    return probs;
  }

  private async read(probs: tf.Tensor2D): Promise<Pending> {
    const [labels, entropy] = tf.tidy(() => [tf.argMax(probs, 1), tf.neg(tf.sum(tf.mul(probs, tf.log(tf.add(probs, 1e-6))), 1))]);
    try {
      return { labels: Int32Array.from(await labels!.data()), uncertainty: Float32Array.from(await entropy!.data()) };
    } finally {
      tf.dispose([labels!, entropy!]);
    }
  }

  override async adapt(x: tf.Tensor4D): Promise<void> {
    let pending = this.reading;
    this.reading = undefined;
    if (!pending || pending.labels.length !== x.shape[0]) {
      // adapt without (or after another batch's) predict: read the batch with the teacher now.
      const probs = tf.tidy(() => tf.softmax(this.teacher.logits(x)) as tf.Tensor2D);
      pending = await this.read(probs);
      probs.dispose();
    }
    const images = tf.unstack(x) as tf.Tensor3D[];
    let updates = 0;
    for (let i = 0; i < images.length; i++) {
      const offer = this.bank.add(images[i]!, pending.labels[i]!, pending.uncertainty[i]!);
      if (!offer.stored) images[i]!.dispose();
      offer.evicted?.dispose();
      this.seen++;
      if (this.seen % this.options.updateFrequency === 0) {
        await this.update();
        updates++;
      }
    }
    this.diagnose('memory', this.bank.size);
    this.diagnose('updates', updates);
  }

  /** One update from the bank as it is now (the code's `update_model`). */
  private async update(): Promise<void> {
    const o = this.options;
    const items = this.bank.items();
    if (items.length > 0) {
      const batch = tf.stack(items.map((i) => i.data)) as tf.Tensor4D;
      this.instanceWeights = tf.tensor1d(items.map((i) => timelinessWeight(i.age / o.capacity)));
      // Drawn before the forward passes, as in the code (the draws are the run's rng stream).
      const strong = cottaAugment(batch, this.ctx.rng, { noiseStd: o.noiseStd, soft: o.softAugment });
      // Teacher in train mode: its robust BN statistics move with the clean bank batch.
      const target = withRobustNorm(this.teacher, o.alpha, () => this.teacher.logits(batch));
      try {
        const { value, grads } = tf.variableGrads(() => withRobustNorm(this.network, o.alpha, () => this.objective(strong, target).loss), this.params);
        try {
          this.diagnose('loss', (await value.data())[0]!);
          this.step(grads);
        } finally {
          value.dispose();
          tf.dispose(Object.values(grads));
        }
      } finally {
        tf.dispose([batch, strong, target, this.instanceWeights]);
        this.instanceWeights = undefined;
      }
    }
    // The code moves the teacher even when there was nothing to learn from.
    this.moveTeacher();
  }

  /**
   * teacher <- (1 - nu) teacher + nu student over the trained variables. The code loops over all
   * parameters, but the others are equal in both networks and stay so (up to float rounding,
   * which this avoids); running statistics are buffers there and are not averaged.
   */
  private moveTeacher(): void {
    const nu = this.options.nu;
    const student = this.network.namedTrainables();
    const teacher = this.teacher.namedTrainables();
    for (const name of this.trainedNames) {
      const tv = teacher.get(name)!;
      const sv = student.get(name)!;
      tf.tidy(() => tv.assign(tf.add(tf.mul(tv, 1 - nu), tf.mul(sv, nu))));
    }
  }

  protected override extraStateBytes(): number {
    return this.bankBytes();
  }

  private bankBytes(): number {
    return this.bank ? this.bank.items().reduce((n, i) => n + tensorBytes(i.data), 0) : 0;
  }

  stateParts(): Record<string, number> {
    return { memory: this.bankBytes() };
  }

  override async reset(): Promise<void> {
    await super.reset(); // student weights and statistics, fresh optimizer
    this.source!.restore(this.teacher);
    tf.dispose(this.bank.clear());
    this.seen = 0;
    this.reading = undefined;
  }

  override dispose(): void {
    if (this.bank) tf.dispose(this.bank.clear());
    this.reading = undefined;
    super.dispose();
  }
}

registerMethod({
  name: 'rotta',
  description: 'RoTTA: robust BN, category-balanced memory (timeliness + uncertainty), age-weighted EMA-teacher loss on BN affine',
  usesLabels: false,
  options: rottaOptions,
  // The authors' CIFAR-10 and CIFAR-100 configs share one adapter config: the option defaults.
  create: (o) => new RottaMethod(o),
});
