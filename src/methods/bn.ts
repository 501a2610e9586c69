/**
 * BN (test-time normalisation, "BN-1" / AdaBN; Schneider et al. 2020, Nado et al. 2020):
 * BatchNorm normalises with the current batch's statistics instead of the source ones.
 * `alpha` blends: (1-alpha)*source + alpha*batch (alpha = 1 is plain BN-1; small alpha keeps
 * small batches usable). `ema`: fold each batch into the statistics with that momentum and
 * normalise with the accumulated target statistics. No weight is trained.
 */
import { z } from 'zod';
import { FrozenMethod } from './base/frozen-method.js';
import { registerMethod } from './registry.js';

export const bnOptions = z.strictObject({
  alpha: z.number().min(0).max(1).default(1),
  /** Momentum of the target-statistics EMA (weight of the new batch); omit for plain BN-1. */
  ema: z.number().gt(0).max(1).optional(),
});
type BnOptions = z.output<typeof bnOptions>;

export class BnMethod extends FrozenMethod<BnOptions> {
  constructor(options: BnOptions) {
    super('bn', options);
  }

  protected override async setup(): Promise<void> {
    const { ema, alpha } = this.options;
    if (ema === undefined) {
      this.network.setNormStatistics('batch', { alpha });
      return;
    }
    this.keepSource(); // the EMA changes the statistics: keep the source ones for reset
    this.network.setNormStatistics('ema', { momentum: ema });
  }
}

registerMethod({
  name: 'bn',
  description: 'test-time BatchNorm: normalise with the current batch statistics (alpha blend, optional EMA)',
  usesLabels: false,
  options: bnOptions,
  create: (o) => new BnMethod(o),
});
