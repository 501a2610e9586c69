/**
 * TENT (Wang et al., ICLR 2021): BatchNorm normalises with the current batch's statistics, and
 * only the BN affine parameters (gamma, beta) are trained, one step per batch, to minimise the
 * mean prediction entropy. The prediction returned is the one from before the update.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { GradientMethod, type Objective, type OptimizerSpec } from './base/gradient-method.js';
import { registerMethod } from './registry.js';

export const tentOptions = z.strictObject({
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  lr: z.number().positive().default(1e-3),
  /** SGD momentum and Nesterov (the authors' ImageNet config: 0.9, no Nesterov). */
  momentum: z.number().min(0).max(1).default(0.9),
  nesterov: z.boolean().default(false),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  /** Reset model and optimizer before every batch. */
  episodic: z.boolean().default(false),
});
type TentOptions = z.output<typeof tentOptions>;

/** Mean Shannon entropy of softmax(logits), computed stably from log-softmax. */
export function meanEntropy(logits: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(tf.exp(logp), logp), 1))) as tf.Scalar;
  });
}

export class TentMethod extends GradientMethod<TentOptions> {
  constructor(options: TentOptions) {
    super('tent', options);
  }

  protected override async setup(): Promise<void> {
    this.network.setNormStatistics('batch');
  }

  protected trainable(): tf.Variable[] {
    return this.network.normAffineVariables();
  }

  protected optimizers(): OptimizerSpec {
    const { optimizer: kind, lr, momentum, nesterov, beta1, beta2 } = this.options;
    return { kind, lr, momentum, nesterov, beta1, beta2 };
  }

  protected objective(x: tf.Tensor4D): Objective {
    const logits = this.network.logits(x);
    return { loss: meanEntropy(logits), prediction: tf.softmax(logits) };
  }
}

/** The authors' code: Adam 1e-3 on CIFAR; SGD 2.5e-4 (momentum 0.9) on ImageNet at batch 64. */
export const TENT_DATASET_DEFAULTS = { cifar10: { optimizer: 'adam', lr: 1e-3 }, imagenet: { optimizer: 'sgd', lr: 2.5e-4 } } as const;

registerMethod({
  name: 'tent',
  description: 'TENT: batch-statistics BN, train BN gamma/beta to minimise prediction entropy (one step per batch)',
  usesLabels: false,
  options: tentOptions,
  defaults: TENT_DATASET_DEFAULTS,
  create: (o) => new TentMethod(o),
});
