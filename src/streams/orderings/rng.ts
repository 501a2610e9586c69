/**
 * Seeded randomness for orderings: ctta's shared generator (`util/rng.ts`: hashed seeding,
 * xoroshiro128+, labelled forks) plus the distributions only orderings draw from (Gamma,
 * Dirichlet, Zipf). Never `Math.random`, so an ordering is a pure function of its inputs and seed.
 *
 * Streams are derived by label (`rng.fork('subset')`, `rng.fork('domain', 3)`): the draws for one
 * purpose do not depend on how many draws another purpose made, so e.g. the image subset of a
 * seed stays the same whichever ordering or Dirichlet concentration is chosen.
 */
import { drawLogGamma } from '../../util/gamma.js';
import { Rng } from '../../util/rng.js';

export class SeededRng extends Rng {
  /** log of a Gamma(shape, 1) draw (see util/gamma.ts). */
  logGamma(shape: number): number {
    return drawLogGamma(this, shape);
  }

  /** log-weights of a symmetric Dirichlet(alpha, ..., alpha) draw over k components (unnormalised). */
  dirichletLog(alpha: number, k: number): Float64Array {
    const out = new Float64Array(k);
    for (let i = 0; i < k; i++) out[i] = this.logGamma(alpha);
    return out;
  }

  /** A symmetric Dirichlet(alpha) draw over k components; sums to 1. */
  dirichlet(alpha: number, k: number): Float64Array {
    return normaliseLogWeights(this.dirichletLog(alpha, k));
  }

  /**
   * A Zipf(a) variate (a > 1) on 1, 2, 3, ...: Devroye's rejection method (Non-Uniform Random
   * Variate Generation, 1986, X.6), the algorithm numpy's `random.zipf` uses.
   */
  zipf(a: number): number {
    if (!(a > 1)) throw new RangeError(`zipf exponent must be > 1, got ${a}`);
    const am1 = a - 1;
    const b = Math.pow(2, am1);
    for (;;) {
      const u = this.floatOpen0();
      const v = this.float();
      const x = Math.floor(Math.pow(u, -1 / am1));
      if (!(x >= 1) || x > Number.MAX_SAFE_INTEGER) continue;
      const t = Math.pow(1 + 1 / x, am1);
      if ((v * x * (t - 1)) / (b - 1) <= t / b) return x;
    }
  }
}

/**
 * exp(w) / sum(exp(w)), computed stably; entries equal to -Infinity get 0. If every entry is
 * -Infinity the result is all zeros (the caller decides what that means).
 */
export function normaliseLogWeights(logw: Float64Array): Float64Array {
  let max = -Infinity;
  for (const w of logw) if (w > max) max = w;
  const out = new Float64Array(logw.length);
  if (max === -Infinity) return out;
  let sum = 0;
  for (let i = 0; i < logw.length; i++) {
    const e = Math.exp(logw[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}
