/**
 * BN (test-time normalisation, "BN-1" / AdaBN; Schneider et al. 2020, Nado et al. 2020):
 * BatchNorm normalises with the current batch's statistics instead of the source ones.
 * `alpha` blends: (1-alpha)*source + alpha*batch (alpha = 1 is plain BN-1; small alpha keeps
 * small batches usable). `ema`: fold each batch into the statistics with that momentum and
 * normalise with the accumulated target statistics. No weight is trained.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Network } from '../models/network.js';
import { WeightSnapshot } from '../models/snapshot.js';
import { registerMethod } from './registry.js';
import type { AdaptationMethod, MethodContext } from './types.js';

export const bnOptions = z.strictObject({
  alpha: z.number().min(0).max(1).default(1),
  /** Momentum of the target-statistics EMA (weight of the new batch); omit for plain BN-1. */
  ema: z.number().gt(0).max(1).optional(),
});

export class BnMethod implements AdaptationMethod {
  readonly name = 'bn';
  readonly usesLabels = false;
  private network!: Network;
  private source?: WeightSnapshot;

  constructor(readonly options: z.output<typeof bnOptions>) {}

  async init(ctx: MethodContext): Promise<void> {
    this.network = ctx.network;
    if (this.options.ema !== undefined) this.source = new WeightSnapshot(this.network); // EMA changes the statistics: keep the source ones for reset
    this.configure();
  }

  private configure(): void {
    if (this.options.ema !== undefined) this.network.setNormStatistics('ema', { momentum: this.options.ema });
    else this.network.setNormStatistics('batch', { alpha: this.options.alpha });
  }

  async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return tf.tidy(() => tf.softmax(this.network.logits(x)));
  }

  /** The statistics were taken from the batch during predict; nothing is learned afterwards. */
  async adapt(): Promise<void> {}

  stateBytes(): number {
    return this.source?.bytes() ?? 0;
  }

  async reset(): Promise<void> {
    this.source?.restore(this.network);
    this.configure();
  }

  dispose(): void {
    this.source?.dispose();
  }
}

registerMethod({
  name: 'bn',
  description: 'test-time BatchNorm: normalise with the current batch statistics (alpha blend, optional EMA)',
  usesLabels: false,
  options: bnOptions,
  create: (o) => new BnMethod(o),
});
