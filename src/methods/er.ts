/**
 * ER, experience replay (Chaudhry et al. 2019), as the online continual-learning frameworks run
 * it: one optimiser step per stream batch on the stream batch and a batch drawn uniformly from a
 * replay memory, after which the stream batch is offered to the memory (so a batch is never
 * replayed in its own step).
 *
 * Two readings of "the loss on both":
 *  - `combine: "separate"` (default; Mai et al.'s online-continual-learning code, which PCR and
 *    OnPro build on): CE of the stream batch and CE of the replay batch, each averaged over its
 *    own batch and summed; two forward passes, so BatchNorm normalises each batch with its own
 *    statistics (and folds both into its running statistics, as two PyTorch passes do).
 *  - `combine: "concat"` (Mammoth): one batch of both, one forward pass, one mean CE.
 * Defaults from Mai et al.'s framework on CIFAR: SGD lr 0.1 without momentum, replay batch 10
 * (with the scenario's stream batch of 10), no augmentation; exact reservoir memory (METHODS.md;
 * `policy: "batched"` is the framework's own approximation).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { OnlineLearner, type LabelledBatch, type LearnerOptimizer } from './base/online-learner.js';
import { registerMethod } from './registry.js';

export const erOptions = z.strictObject({
  /** M: images the replay memory holds. */
  memorySize: z.number().int().positive().default(200),
  /** Images drawn from the memory for each step (fewer while it holds fewer). */
  replayBatch: z.number().int().positive().default(10),
  policy: z.enum(['reservoir', 'batched', 'class-balanced']).default('reservoir'),
  combine: z.enum(['separate', 'concat']).default('separate'),
  optimizer: z.enum(['sgd', 'adam']).default('sgd'),
  lr: z.number().positive().default(0.1),
  momentum: z.number().min(0).max(1).default(0),
  weightDecay: z.number().min(0).default(0),
});
type ErOptions = z.output<typeof erOptions>;

/** Mean cross-entropy of integer labels under logits. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(labels, logits.shape[1]!)), 1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  });
}

export class ErMethod extends OnlineLearner<ErOptions> {
  constructor(options: ErOptions) {
    super('er', options);
  }

  protected override async setup(): Promise<void> {
    this.createMemory(this.options.memorySize, this.options.policy);
  }

  protected optimizer(): LearnerOptimizer {
    const { optimizer: kind, lr, momentum, weightDecay } = this.options;
    return { kind, lr, momentum, weightDecay };
  }

  protected async learn({ x, y, labels }: LabelledBatch): Promise<void> {
    this.withReplay(this.options.replayBatch, (replay) => {
      const loss = this.step(() => {
        if (!replay) return crossEntropy(this.network.logits(x), y);
        if (this.options.combine === 'concat') {
          return crossEntropy(this.network.logits(tf.concat([x, replay.x])), tf.concat([y, replay.y]));
        }
        return tf.add(crossEntropy(this.network.logits(x), y), crossEntropy(this.network.logits(replay.x), replay.y)) as tf.Scalar;
      });
      this.diagnose('loss', loss);
      this.diagnose('replayed', replay?.size ?? 0);
    });
    this.memory!.update(this.toStored(x), labels);
  }
}

registerMethod({
  name: 'er',
  description: 'ER: experience replay, one SGD step per batch on the stream batch + a replay batch (reservoir memory); labels after prediction',
  usesLabels: true,
  fullHead: true,
  options: erOptions,
  create: (o) => new ErMethod(o),
});
