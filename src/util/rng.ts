/**
 * Seeded random numbers for everything ctta draws (shuffles, augmentations, orderings,
 * corruptions): the same seed gives the same stream on every machine, which Math.random cannot
 * promise. There is one generator, pure-rand's xoroshiro128+, started from a 128-bit hash of
 * (seed, label).
 *
 * Streams are derived by labels (`rng.fork('subset')`, `Rng.derive(seed, 'shuffle', epoch)`):
 * the draws for one purpose do not depend on how many draws another purpose made, so e.g. an
 * ordering's image subset stays the same whatever else the ordering draws.
 *
 * Distributions that only one part of ctta needs build on this class where they are used:
 * Gamma, Dirichlet and Zipf in `streams/orderings/rng.ts`, Poisson and numpy-style ranges in
 * `streams/corruptions/rng.ts`.
 */
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';

type Generator = ReturnType<typeof xoroshiro128plusFromState>;
type State = [number, number, number, number];

/** One part of a stream's label: a purpose ("shuffle") or a number (an epoch, an image index). */
export type Label = number | string;

/** A constructor with Rng's signature, so `fork` and `derive` return the subclass they are called on. */
type RngClass<R extends Rng> = new (seed: number, label?: string) => R;

const TWO_26 = 67108864;
const TWO_53 = 9007199254740992;

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
 * its own multiplier and start value, then the lanes are cross-mixed, so that keys differing in
 * any character give unrelated states.
 */
function hash128(key: string): State {
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
  a = fmix32(a ^ key.length);
  b = fmix32(b ^ a);
  c = fmix32(c ^ b);
  d = fmix32(d ^ c);
  a = fmix32(a ^ d);
  return [a, b, c, d];
}

/**
 * Keys are `ctta-c|<seed>|<label>|<label>...`: the prefix and separator the corruptions keyed
 * their streams with before all draws shared this module, so corrupted images stay
 * byte-identical. The separator cannot occur in an integer, so (1, "2x") and (12, "x") differ.
 */
const KEY_PREFIX = 'ctta-c';
const SEPARATOR = '|';

/**
 * The generator state for (seed, label). pure-rand's own `xoroshiro128plus(seed)` keeps only 32
 * bits of the seed and starts neighbouring seeds from nearly equal states; hashing every digit
 * of the seed together with the label avoids both.
 */
function stateFor(seed: number, label: string): State {
  const state = hash128(`${KEY_PREFIX}${SEPARATOR}${seed}${SEPARATOR}${label}`);
  // The all-zero state is a fixed point of xoroshiro; the hash makes it astronomically
  // unlikely, this makes it impossible.
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 0x1234567;
  return state;
}

/** A forked stream's label: its parent's label followed by the new parts, e.g. "domain|3". */
function joinLabels(base: string, labels: readonly Label[]): string {
  const parts = labels.map(String);
  return (base === '' ? parts : [base, ...parts]).join(SEPARATOR);
}

export class Rng {
  private readonly gen: Generator;
  private spareNormal: number | undefined;

  /** `seed` must be a safe integer (all 53 bits are used); `label` names the stream. */
  constructor(
    readonly seed: number,
    readonly label = '',
  ) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${String(seed)}`);
    this.gen = xoroshiro128plusFromState(stateFor(seed, label));
  }

  /** The stream of (seed, labels), e.g. `Rng.derive(seed, 'augment', epoch)`; a subclass derives its own kind. */
  static derive<R extends Rng>(this: RngClass<R>, seed: number, ...labels: Label[]): R {
    return new this(seed, joinLabels('', labels));
  }

  /** An independent stream for a sub-purpose, determined by (seed, this label, labels). */
  fork(...labels: Label[]): this {
    const Class = this.constructor as RngClass<this>;
    return new Class(this.seed, joinLabels(this.label, labels));
  }

  /**
   * A uniform integer in [0, 2^53), from the high bits of two outputs: the generator returns the
   * low 32 bits of xoroshiro128+'s sum, whose lowest bits are its weakest.
   */
  private bits53(): number {
    const hi = this.gen.next() >>> 5; // 27 bits
    const lo = this.gen.next() >>> 6; // 26 bits
    return hi * TWO_26 + lo;
  }

  /** Uniform in [0, 1), 53 random bits. */
  float(): number {
    return this.bits53() / TWO_53;
  }

  /** Uniform in (0, 1]: safe to take the log of. */
  floatOpen0(): number {
    return 1 - this.float();
  }

  /** Uniform integer in [from, to], both included; unbiased (rejection sampling). */
  int(from: number, to: number): number {
    const range = to - from + 1;
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || !(range >= 1 && range <= TWO_53)) {
      throw new RangeError(`int(${from}, ${to}) is not a range of integers`);
    }
    const limit = TWO_53 - (TWO_53 % range);
    for (;;) {
      const u = this.bits53();
      if (u < limit) return from + (u % range);
    }
  }

  /** Normal with the given mean and standard deviation (Marsaglia's polar method; both values of a pair are used). */
  normal(mean = 0, std = 1): number {
    return mean + std * this.standardNormal();
  }

  private standardNormal(): number {
    if (this.spareNormal !== undefined) {
      const z = this.spareNormal;
      this.spareNormal = undefined;
      return z;
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

  /** Fisher-Yates, in place; returns `arr`. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const t = arr[i];
      arr[i] = arr[j];
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
}

/**
 * A 32-bit digest of (seed, labels), from the hash that seeds `Rng`: for a library that takes
 * a 32-bit seed of its own.
 */
export function hashSeed(seed: number, ...labels: Label[]): number {
  return stateFor(seed, joinLabels('', labels))[0];
}
