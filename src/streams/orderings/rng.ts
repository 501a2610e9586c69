/**
 * Seeded randomness for orderings. Every draw goes through pure-rand's xoroshiro128+, never
 * `Math.random`, so an ordering is a pure function of its inputs and seed.
 *
 * Streams are derived by label (`rng.fork('subset')`, `rng.fork('domain/3')`): the draws for one
 * purpose do not depend on how many draws another purpose made, so e.g. the image subset of a
 * seed stays the same whichever ordering or Dirichlet concentration is chosen.
 */
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';

type Generator = ReturnType<typeof xoroshiro128plusFromState>;

/** Murmur3's 32-bit finaliser: a cheap bijective scrambler of 32-bit words. */
function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-16 code units of `text`. */
function hashLabel(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Four well-mixed state words from (seed, label). pure-rand's own `xoroshiro128plus(seed)` keeps
 * only 32 bits of the seed and starts neighbouring seeds from nearly equal states; hashing both
 * halves of the (up to 53-bit) seed with the label avoids both.
 */
function stateFor(seed: number, label: string): number[] {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0;
  const lh = hashLabel(label);
  const words: number[] = [];
  let acc = mix32(lo ^ mix32(hi ^ 0x9e3779b9));
  for (let i = 0; i < 4; i++) {
    acc = mix32(acc + 0x9e3779b9 + mix32(lh + i));
    words.push(acc | 0);
  }
  if (!words.some((w) => w !== 0)) words[0] = 1; // the all-zero state is a fixed point
  return words;
}

export class SeededRng {
  private readonly gen: Generator;
  private spareNormal: number | undefined;

  /** `seed` must be a non-negative safe integer; `label` names the stream. */
  constructor(
    readonly seed: number,
    readonly label = '',
  ) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`seed must be a non-negative safe integer, got ${String(seed)}`);
    }
    this.gen = xoroshiro128plusFromState(stateFor(seed, label));
  }

  /** An independent stream for a sub-purpose, determined by (seed, this label, sub-label). */
  fork(subLabel: string): SeededRng {
    return new SeededRng(this.seed, this.label === '' ? subLabel : `${this.label}/${subLabel}`);
  }

  /** Uniform in [0, 1), 53 random bits. */
  float(): number {
    return uniformFloat64(this.gen);
  }

  /** Uniform in (0, 1]: safe to take the log of. */
  floatOpen0(): number {
    return 1 - uniformFloat64(this.gen);
  }

  /** Uniform integer in [from, to], both included. */
  int(from: number, to: number): number {
    return uniformInt(this.gen, from, to);
  }

  /** Fisher-Yates, in place; returns `arr`. */
  shuffle<T extends { length: number; [i: number]: number }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const t = arr[i]!;
      arr[i] = arr[j]!;
      arr[j] = t;
    }
    return arr;
  }

  /** A uniformly random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** Standard normal (Marsaglia's polar method). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const s = this.spareNormal;
      this.spareNormal = undefined;
      return s;
    }
    for (;;) {
      const u = 2 * this.float() - 1;
      const v = 2 * this.float() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt((-2 * Math.log(s)) / s);
        this.spareNormal = v * f;
        return u * f;
      }
    }
  }

  /**
   * log of a Gamma(shape, 1) draw. Marsaglia & Tsang (2000) for shape >= 1; for shape < 1 the
   * boost Gamma(a) = Gamma(a + 1) * U^(1/a), kept in log space because with a tiny shape
   * (Dirichlet concentration 1e-3) U^(1/a) underflows to 0 in linear space.
   */
  logGamma(shape: number): number {
    if (!(shape > 0)) throw new RangeError(`gamma shape must be > 0, got ${shape}`);
    if (shape < 1) return this.logGamma(shape + 1) + Math.log(this.floatOpen0()) / shape;
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      let v = 1 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const u = this.floatOpen0();
      if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) {
        return Math.log(d) + Math.log(v);
      }
    }
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
