/**
 * Seeded random numbers for the corruptions.
 *
 * Every corrupted image gets its own generator, derived from (seed, image index, corruption,
 * severity) by hashing: an image's output then depends on nothing else (not on the batch it is
 * in, the order images are processed, or other corruptions run before it), which is what makes
 * sharded and resumed streams byte-identical. Math.random is never used.
 */
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/** murmur3's 32-bit finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/**
 * 128 bits of hash of a string, as four int32 lanes. Each lane walks the UTF-16 code units with
 * its own multiplier and start value, then lanes are cross-mixed, so that keys differing in any
 * character give unrelated states.
 */
function hash128(key: string): [number, number, number, number] {
  let a = 0x9e3779b9 | 0;
  let b = 0x243f6a88 | 0;
  let c = 0xb7e15162 | 0;
  let d = 0x6a09e667 | 0;
  for (let i = 0; i < key.length; i++) {
    const k = key.charCodeAt(i);
    a = Math.imul(a ^ k, 0x01000193);
    b = Math.imul(b ^ k, 0x5bd1e995);
    c = Math.imul(c ^ k, 0x27d4eb2d);
    d = Math.imul(d ^ k, 0x165667b1);
  }
  const len = key.length;
  a = fmix32(a ^ len);
  b = fmix32(b ^ a);
  c = fmix32(c ^ b);
  d = fmix32(d ^ c);
  a = fmix32(a ^ d);
  return [a, b, c, d];
}

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

/** A stream of random numbers with the draws the corruptions need (numpy-like semantics). */
export class Rng {
  private readonly gen: RandomGenerator;
  private spareNormal = 0;
  private hasSpare = false;

  constructor(state: readonly [number, number, number, number]) {
    // xoroshiro's all-zero state is a fixed point; the hash makes it astronomically unlikely,
    // but a constant lane keeps it impossible.
    const s: [number, number, number, number] =
      (state[0] | state[1] | state[2] | state[3]) === 0 ? [0x1234567, 0, 0, 0] : [...state];
    this.gen = xoroshiro128plusFromState(s);
  }

  /** Uniform in [0, 1) with 53 random bits (high bits of two outputs: xoroshiro+'s low bits are weak). */
  uniform(): number {
    const hi = this.gen.next() >>> 5; // 27 bits
    const lo = this.gen.next() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [low, high), like numpy.random.uniform. */
  uniformRange(low: number, high: number): number {
    return low + (high - low) * this.uniform();
  }

  /** Integer in [low, high) (high exclusive), like numpy.random.randint. */
  randint(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low));
  }

  /** Standard normal (Marsaglia's polar method; both values of a pair are used). */
  standardNormal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spareNormal;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spareNormal = v * f;
    this.hasSpare = true;
    return u * f;
  }

  /** Normal with mean `loc` and standard deviation `scale`. */
  normal(loc: number, scale: number): number {
    return loc + scale * this.standardNormal();
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
      let prod = this.uniform();
      while (prod > limit) {
        k++;
        prod *= this.uniform();
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
      const u = this.uniform() - 0.5;
      const v = this.uniform();
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
 * The generator for one (seed, image index, corruption, severity). Keys are joined with a
 * separator that cannot occur in the integers, so (1, 23) and (12, 3) differ.
 */
export function deriveRng(seed: number, index: number, corruption: string, severity: number): Rng {
  return new Rng(hash128(`ctta-c|${seed}|${index}|${corruption}|${severity}`));
}
