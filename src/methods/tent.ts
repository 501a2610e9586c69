/**
 * TENT (Wang et al., ICLR 2021): BatchNorm normalises with the current batch's statistics, and
 * only the BN affine parameters (gamma, beta) are trained, one step per batch, to minimise the
 * mean prediction entropy. The prediction returned is the one from before the update.
 *
 * One forward/backward pass per batch: `predict` computes the probabilities and the entropy
 * gradients together; `adapt` applies the gradients it kept.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Network } from '../models/network.js';
import { WeightSnapshot } from '../models/snapshot.js';
import { createOptimizer, disposeOptimizer } from '../training/optimizer.js';
import { familyDefault } from './family-defaults.js';
import { registerMethod } from './registry.js';
import type { AdaptationMethod, MethodContext } from './types.js';

export const tentOptions = z.strictObject({
  /** Default per family: adam (CIFAR-like) or sgd (ImageNet), as in the paper's code. */
  optimizer: z.enum(['adam', 'sgd']).optional(),
  /** Default 1e-3 (adam) / 2.5e-4 (sgd). */
  lr: z.number().positive().optional(),
  /** SGD momentum. */
  momentum: z.number().min(0).max(1).default(0.9),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  /** Reset model and optimizer before every batch. */
  episodic: z.boolean().default(false),
});

/** Mean Shannon entropy of softmax(logits), computed stably from log-softmax. */
export function meanEntropy(logits: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(tf.exp(logp), logp), 1))) as tf.Scalar;
  });
}

export class TentMethod implements AdaptationMethod {
  readonly name = 'tent';
  readonly usesLabels = false;
  private network!: Network;
  private params: tf.Variable[] = [];
  private source?: WeightSnapshot;
  private optimizer?: tf.Optimizer;
  private pending?: tf.NamedTensorMap;
  private settings!: { optimizer: 'adam' | 'sgd'; lr: number };

  constructor(readonly options: z.output<typeof tentOptions>) {}

  async init(ctx: MethodContext): Promise<void> {
    this.network = ctx.network;
    const optimizer = this.options.optimizer ?? familyDefault<'adam' | 'sgd'>('tent', 'optimizer', ctx.family);
    this.settings = { optimizer, lr: this.options.lr ?? (optimizer === 'adam' ? 1e-3 : 2.5e-4) };
    this.network.setNormStatistics('batch');
    this.params = this.network.normAffineVariables();
    this.source = new WeightSnapshot(this.network);
    this.optimizer = this.newOptimizer();
  }

  private newOptimizer(): tf.Optimizer {
    const o = this.options;
    return createOptimizer(this.settings.optimizer, { lr: this.settings.lr, momentum: o.momentum, beta1: o.beta1, beta2: o.beta2 });
  }

  async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    if (this.options.episodic) await this.reset();
    this.dropPending();
    let probs: tf.Tensor2D | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const logits = this.network.logits(x);
      probs = tf.keep(tf.softmax(logits));
      return meanEntropy(logits);
    }, this.params);
    value.dispose();
    this.pending = grads;
    return probs!;
  }

  async adapt(): Promise<void> {
    if (!this.pending) return;
    this.optimizer!.applyGradients(this.pending);
    this.dropPending();
  }

  stateBytes(): number {
    // Source copy for reset, plus Adam's two moments (or SGD's momentum) per trained parameter.
    const trained = this.params.reduce((s, p) => s + p.size * 4, 0);
    return (this.source?.bytes() ?? 0) + trained * (this.settings.optimizer === 'adam' ? 2 : 1);
  }

  async reset(): Promise<void> {
    this.dropPending();
    this.source?.restore(this.network);
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = this.newOptimizer();
  }

  dispose(): void {
    this.dropPending();
    this.source?.dispose();
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = undefined;
  }

  private dropPending(): void {
    if (this.pending) tf.dispose(Object.values(this.pending));
    this.pending = undefined;
  }
}

registerMethod({
  name: 'tent',
  description: 'TENT: batch-statistics BN, train BN gamma/beta to minimise prediction entropy (one step per batch)',
  usesLabels: false,
  options: tentOptions,
  create: (o) => new TentMethod(o),
});
