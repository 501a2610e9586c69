/**
 * Seeded random numbers for the corruptions: ctta's shared generator (`util/rng.ts`) plus the
 * numpy-like draws the corruption recipes are written in (uniform ranges, randint, Poisson).
 *
 * Every corrupted image gets its own stream, derived from (seed, image index, corruption,
 * severity) by hashing: an image's output then depends on nothing else (not on the batch it is
 * in, the order images are processed, or other corruptions run before it), which is what makes
 * sharded and resumed streams byte-identical. Math.random is never used.
 */
import { Rng } from '../../util/rng.js';

/** log(k!) for small k by table, Stirling's series beyond. */
const LOG_FACT_TABLE_SIZE = 1024;
const logFactTable = (() => {
  const t = new Float64Array(LOG_FACT_TABLE_SIZE);
  for (let k = 2; k < LOG_FACT_TABLE_SIZE; k++) t[k] = t[k - 1] + Math.log(k);
  return t;
})();

function logFactorial(k: number): number {
  if (k < LOG_FACT_TABLE_SIZE) return logFactTable[k];
  const n = k + 1; // log Gamma(n)
  const inv = 1 / n;
  const inv2 = inv * inv;
  return (
    (n - 0.5) * Math.log(n) -
    n +
    0.5 * Math.log(2 * Math.PI) +
    inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
  );
}

/** The shared generator with the draws the corruptions need (numpy-like semantics). */
export class CorruptionRng extends Rng {
  /** Uniform in [low, high), like numpy.random.uniform. */
  uniformRange(low: number, high: number): number {
    return low + (high - low) * this.float();
  }

  /** Integer in [low, high) (high exclusive), like numpy.random.randint. */
  randint(low: number, high: number): number {
    return low + Math.floor(this.float() * (high - low));
  }

  /**
   * Poisson(lam). Small means multiply uniforms (Knuth); from 10 on, Hoermann's PTRS
   * transformed rejection (the same split numpy uses), exact for any mean.
   */
  poisson(lam: number): number {
    if (!(lam > 0)) return 0;
    if (lam < 10) {
      const limit = Math.exp(-lam);
      let k = 0;
      let prod = this.float();
      while (prod > limit) {
        k++;
        prod *= this.float();
      }
      return k;
    }
    const slam = Math.sqrt(lam);
    const loglam = Math.log(lam);
    const b = 0.931 + 2.53 * slam;
    const a = -0.059 + 0.02483 * b;
    const invAlpha = 1.1239 + 1.1328 / (b - 3.4);
    const vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
      const u = this.float() - 0.5;
      const v = this.float();
      const us = 0.5 - Math.abs(u);
      const k = Math.floor(((2 * a) / us + b) * u + lam + 0.43);
      if (us >= 0.07 && v <= vr) return k;
      if (k < 0 || (us < 0.013 && v > us)) continue;
      if (Math.log(v) + Math.log(invAlpha) - Math.log(a / (us * us) + b) <= -lam + k * loglam - logFactorial(k)) {
        return k;
      }
    }
  }
}

/**
 * The generator for one (seed, image index, corruption, severity). Its labels start with a
 * number, those of the other streams (orderings, training) with a word, so they never meet.
 */
export function deriveRng(seed: number, index: number, corruption: string, severity: number): CorruptionRng {
  return CorruptionRng.derive(seed, index, corruption, severity);
}
