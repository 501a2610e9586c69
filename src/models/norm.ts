/**
 * Normalisation layers as adaptation methods see them.
 *
 * Test-time adaptation is mostly about norm layers: BN swaps running statistics for the current
 * batch's, TENT trains gamma/beta, RoTTA/BN-alpha blend the two. `Network` runs every norm layer
 * through `NormLayer.apply`, so a method changes behaviour by setting fields here instead of
 * rewriting the model.
 */
import * as tf from '@tensorflow/tfjs';
import { groupNorm } from './layers/group-norm.js';
import { batchNormWithBatchStatistics } from './batch-norm.js';
import { channelMoments } from './reductions.js';

/**
 * Which statistics a BatchNorm layer normalises with: 'running' (stored), 'batch' (this batch's),
 * or 'ema' (first fold this batch into the stored statistics with `momentum`, then use them).
 */
export type NormStatistics = 'running' | 'batch' | 'ema';

export class NormLayer {
  /**
   * 'running' = stored statistics (inference, Source); 'batch' = the current batch's statistics
   * (training, BN-1, TENT). Ignored by GroupNorm, which always uses per-sample statistics.
   */
  statistics: NormStatistics = 'running';
  /** With 'batch': normalise with (1-alpha)*running + alpha*batch (alpha = 1 is plain BN-1). */
  alpha = 1;
  /**
   * With 'batch': after each forward pass, running <- (1-momentum)*running + momentum*batch
   * (PyTorch convention: momentum is the weight of the new batch). undefined = never update.
   * The update is detached from any gradient.
   */
  momentum: number | undefined = undefined;
  /**
   * While true the layer never writes its running statistics ('ema' normalises with the stored
   * ones as they are): held-out evaluation must change no state (`Network.withFrozenStatistics`).
   */
  frozen = false;

  constructor(
    readonly name: string,
    readonly kind: 'batch' | 'group',
    readonly channels: number,
    readonly epsilon: number,
    /** Affine scale and shift; undefined when the layer has none (Keras center/scale=false). */
    readonly gamma: tf.Variable | undefined,
    readonly beta: tf.Variable | undefined,
    /** BatchNorm only. */
    readonly movingMean: tf.Variable | undefined,
    readonly movingVariance: tf.Variable | undefined,
    /** GroupNorm only. */
    readonly groups = 1,
  ) {}

  /** Affine parameters, for methods that train only them (TENT, EATA, SAR). */
  affineVariables(): tf.Variable[] {
    return [this.gamma, this.beta].filter((v): v is tf.Variable => v !== undefined);
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    if (this.kind === 'group') {
      return tf.tidy(() => groupNorm(x, this.gammaOrOnes(), this.betaOrZeros(), this.groups, this.epsilon));
    }
    return tf.tidy(() => {
      let mean: tf.Tensor1D;
      let variance: tf.Tensor1D;
      if (this.statistics === 'ema' && !this.frozen) {
        const m = channelMoments(x);
        this.updateRunning(m.mean, m.variance, x.size / this.channels, this.momentum ?? 0.1);
        mean = this.movingMean as tf.Tensor1D;
        variance = this.movingVariance as tf.Tensor1D;
      } else if (this.statistics === 'running' || this.statistics === 'ema') {
        mean = this.movingMean as tf.Tensor1D;
        variance = this.movingVariance as tf.Tensor1D;
      } else {
        if (this.alpha === 1) {
          // The common training case as one op with a closed-form gradient (batch-norm.ts).
          const r = batchNormWithBatchStatistics(x, this.gammaOrOnes(), this.betaOrZeros(), this.epsilon);
          if (this.momentum !== undefined && !this.frozen) this.updateRunning(r.mean, r.variance, x.size / this.channels, this.momentum);
          r.mean.dispose();
          r.variance.dispose();
          return r.y;
        }
        const m = channelMoments(x);
        if (this.momentum !== undefined && !this.frozen) this.updateRunning(m.mean, m.variance, x.size / this.channels, this.momentum);
        // Blend as in BN-alpha: the source statistics are constants here (no gradient).
        const a = this.alpha;
        mean = m.mean.mul(a).add(this.movingMean!.mul(1 - a));
        variance = m.variance.mul(a).add(this.movingVariance!.mul(1 - a));
      }
      // Broadcast form instead of tf.batchNorm: its gradient builds a full-size Tile, which
      // dominated TENT's step on wasm (WASM-NOTES.md).
      const { scale, shift } = this.affine(mean, variance);
      return x.mul(scale).add(shift) as tf.Tensor4D;
    });
  }

  /**
   * True when `apply` normalises with the stored statistics and changes no state: the norm is
   * then the per-channel affine map x * scale + shift of `storedAffine` (Network folds it into
   * the preceding convolution).
   */
  usesStoredStatistics(): boolean {
    // A method that swaps `apply` on the instance (RoTTA's robust BN) must have it called.
    if (Object.prototype.hasOwnProperty.call(this, 'apply')) return false;
    return this.kind === 'batch' && (this.statistics === 'running' || (this.statistics === 'ema' && this.frozen));
  }

  /** scale = gamma / sqrt(running variance + epsilon), shift = beta - running mean * scale. */
  storedAffine(): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    return this.affine(this.movingMean as tf.Tensor1D, this.movingVariance as tf.Tensor1D);
  }

  /** The norm with statistics (mean, variance) as x * scale + shift. */
  private affine(mean: tf.Tensor1D, variance: tf.Tensor1D): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    const scale = tf.rsqrt(variance.add(this.epsilon)).mul(this.gammaOrOnes()) as tf.Tensor1D;
    const shift = this.betaOrZeros().sub(mean.mul(scale)) as tf.Tensor1D;
    return { scale, shift };
  }

  /** Overwrites running statistics, e.g. to restore the source model's. */
  setRunning(mean: tf.Tensor1D, variance: tf.Tensor1D): void {
    this.movingMean!.assign(mean);
    this.movingVariance!.assign(variance);
  }

  private updateRunning(mean: tf.Tensor1D, variance: tf.Tensor1D, count: number, m: number): void {
    // Running variance is stored unbiased (as PyTorch and Keras do); batch normalisation itself
    // uses the biased variance.
    const unbiased = count > 1 ? count / (count - 1) : 1;
    tf.tidy(() => {
      this.movingMean!.assign(this.movingMean!.mul(1 - m).add(mean.mul(m)));
      this.movingVariance!.assign(this.movingVariance!.mul(1 - m).add(variance.mul(m * unbiased)));
    });
  }

  private gammaOrOnes(): tf.Tensor1D {
    return (this.gamma ?? tf.ones([this.channels])) as tf.Tensor1D;
  }

  private betaOrZeros(): tf.Tensor1D {
    return (this.beta ?? tf.zeros([this.channels])) as tf.Tensor1D;
  }
}
