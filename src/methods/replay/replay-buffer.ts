/**
 * The replay memory of the online continual-learning methods (ER, OnPro, UER): a fixed number of
 * (image, label) slots filled from the stream, read back as uniform samples without replacement.
 * Images are kept as the stream's raw uint8 pixels (4x smaller than float32, and exactly what was
 * seen); `stateBytes` counts them at that size, plus 4 bytes per label (and, class-balanced, an
 * 8-byte key per slot).
 *
 * Three ways to decide what stays (`policy`), from the codebases the methods come from:
 * - `reservoir` (default; Vitter's Algorithm R, as Mammoth): the n-th sample of the stream enters
 *   with probability M/n and replaces a uniformly chosen slot, so at any time every sample seen so
 *   far is in memory with the same probability M/n.
 * - `batched` (Mai et al.'s framework, used by OnPro): per batch, free slots are filled in order;
 *   each remaining sample draws j ~ U[0, n0) with n0 = samples seen after that fill, and is written
 *   to slot j if j < M (a later sample of the batch drawing the same slot wins). Every position
 *   of a batch enters with M/n0, not M/(n0 + i): a close approximation, kept for fidelity.
 * - `class-balanced` (Avalanche's ClassBalancedBuffer): each class seen so far gets an equal share
 *   of the slots (the first `M mod classes` classes one more), and keeps a uniform sample of its
 *   own images: each image draws a random key on arrival and a class keeps its largest keys, so a
 *   share that shrinks when a new class appears drops a uniform subset.
 *
 * Methods update the memory after their optimiser step, so a batch is never replayed in its own
 * step (METHODS.md, "Replay buffer").
 */
import { CttaError } from '../../errors.js';
import type { Rng } from '../../util/rng.js';

export type ReplayPolicy = 'reservoir' | 'batched' | 'class-balanced';

export interface ReplayBufferOptions {
  /** M: how many images the memory holds. */
  capacity: number;
  /** Bytes of one image (height x width x channels, uint8). */
  imageBytes: number;
  policy?: ReplayPolicy;
  rng: Rng;
}

/** A sample drawn from the memory: images back to back (uint8), their labels, and their slots. */
export interface ReplaySample {
  images: Uint8Array;
  labels: Int32Array;
  slots: Int32Array;
}

export class ReplayBuffer {
  readonly capacity: number;
  readonly imageBytes: number;
  readonly policy: ReplayPolicy;
  private readonly rng: Rng;
  private readonly images: Uint8Array;
  private readonly labels: Int32Array;
  /** Class-balanced only: each slot's random key (the largest keys of a class stay). */
  private readonly keys: Float64Array;
  /** Class-balanced only: classes by first appearance (the first `M mod classes` get a slot more). */
  private readonly classOrder: number[] = [];
  private filled = 0;
  private seenSoFar = 0;

  constructor(o: ReplayBufferOptions) {
    if (!Number.isInteger(o.capacity) || o.capacity < 1) throw new CttaError(`replay capacity ${o.capacity} is not a positive integer`, { fix: 'set the method\'s memory size to 1 or more' });
    if (!Number.isInteger(o.imageBytes) || o.imageBytes < 1) throw new CttaError(`replay image size ${o.imageBytes} is not a positive integer`);
    this.capacity = o.capacity;
    this.imageBytes = o.imageBytes;
    this.policy = o.policy ?? 'reservoir';
    this.rng = o.rng;
    this.images = new Uint8Array(o.capacity * o.imageBytes);
    this.labels = new Int32Array(o.capacity);
    this.keys = new Float64Array(this.policy === 'class-balanced' ? o.capacity : 0);
  }

  /** Images in memory. */
  get size(): number {
    return this.filled;
  }

  /** Images offered to the memory so far. */
  get seen(): number {
    return this.seenSoFar;
  }

  /** Bytes held: images at their stored dtype (uint8) plus int32 labels. */
  stateBytes(): number {
    return this.images.byteLength + this.labels.byteLength + this.keys.byteLength;
  }

  /** Offers a batch (images back to back, uint8) to the memory; which ones stay is the policy's. */
  update(images: Uint8Array, labels: ArrayLike<number>): void {
    const n = labels.length;
    if (images.length !== n * this.imageBytes) {
      throw new CttaError(`replay update: ${images.length} bytes of images for ${n} labels of ${this.imageBytes} bytes each`);
    }
    if (this.policy === 'batched') this.updateBatched(images, labels);
    else if (this.policy === 'class-balanced') for (let i = 0; i < n; i++) this.offerBalanced(images, labels, i);
    else for (let i = 0; i < n; i++) this.offerReservoir(images, labels, i);
  }

  /** `k` images drawn uniformly without replacement (all of them when fewer are stored), in the order drawn. */
  sample(k: number): ReplaySample {
    const m = Math.min(Math.max(0, Math.floor(k)), this.filled);
    // A partial Fisher-Yates shuffle of the slot numbers: the first m are the sample.
    const order = new Int32Array(this.filled);
    for (let i = 0; i < this.filled; i++) order[i] = i;
    for (let i = 0; i < m; i++) {
      const j = this.rng.int(i, this.filled - 1);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    const slots = order.slice(0, m);
    const images = new Uint8Array(m * this.imageBytes);
    const labels = new Int32Array(m);
    slots.forEach((s, i) => {
      images.set(this.images.subarray(s * this.imageBytes, (s + 1) * this.imageBytes), i * this.imageBytes);
      labels[i] = this.labels[s]!;
    });
    return { images, labels, slots };
  }

  /**
   * The images of `slots` back to back (uint8), in the order given; a slot may appear more than
   * once. For methods that pick slots themselves (OnPro's class-pair mixup draws per class, with
   * replacement, from `storedLabels()`); `sample` stays the way to draw a uniform batch.
   */
  gather(slots: ArrayLike<number>): Uint8Array {
    const out = new Uint8Array(slots.length * this.imageBytes);
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]!;
      // Slots past `size` hold stale or empty bytes: reading them would replay data that is gone.
      if (!(Number.isInteger(s) && s >= 0 && s < this.filled)) throw new RangeError(`replay gather: slot ${s} is not one of the ${this.filled} filled slots`);
      out.set(this.images.subarray(s * this.imageBytes, (s + 1) * this.imageBytes), i * this.imageBytes);
    }
    return out;
  }

  /** Labels of the stored images, slot order (for tests and diagnostics). */
  storedLabels(): Int32Array {
    return this.labels.slice(0, this.filled);
  }

  /** Empties the memory (a method's reset). */
  clear(): void {
    this.filled = 0;
    this.seenSoFar = 0;
    this.classOrder.length = 0;
  }

  private write(slot: number, images: Uint8Array, labels: ArrayLike<number>, i: number): void {
    this.images.set(images.subarray(i * this.imageBytes, (i + 1) * this.imageBytes), slot * this.imageBytes);
    this.labels[slot] = labels[i]!;
  }

  /** Algorithm R: the n-th sample (n = seen + 1) enters with probability M/n. */
  private offerReservoir(images: Uint8Array, labels: ArrayLike<number>, i: number): void {
    if (this.filled < this.capacity) {
      this.write(this.filled++, images, labels, i);
    } else {
      const j = this.rng.int(0, this.seenSoFar); // uniform over the n = seen + 1 samples so far
      if (j < this.capacity) this.write(j, images, labels, i);
    }
    this.seenSoFar++;
  }

  /** Mai et al.'s batch update (see the file comment). */
  private updateBatched(images: Uint8Array, labels: ArrayLike<number>): void {
    const n = labels.length;
    const free = Math.min(this.capacity - this.filled, n);
    for (let i = 0; i < free; i++) this.write(this.filled++, images, labels, i);
    this.seenSoFar += free;
    if (free === n) return;
    // The draws of the rest of the batch all use the count after the fill (n0), then it grows.
    const n0 = this.seenSoFar;
    for (let i = free; i < n; i++) {
      const j = Math.floor(this.rng.float() * n0);
      if (j < this.capacity) this.write(j, images, labels, i);
    }
    this.seenSoFar += n - free;
  }

  /** Avalanche's class-balanced reservoir: equal shares per class, each a uniform sample by key. */
  private offerBalanced(images: Uint8Array, labels: ArrayLike<number>, i: number): void {
    this.seenSoFar++;
    const label = labels[i]!;
    const key = this.rng.float();
    const classes = this.classesInMemory(label);
    const share = shareOf(this.capacity, classes, label);
    // Shrink every class over its share first (a new class takes slots from the others).
    for (const c of classes.keys()) this.trimClass(c, shareOf(this.capacity, classes, c));
    const mine = this.slotsOf(label);
    if (mine.length < share) {
      this.keys[this.filled] = key;
      this.write(this.filled++, images, labels, i);
      return;
    }
    // Full share: replace this class's smallest key if the newcomer's is larger.
    let smallest = -1;
    for (const s of mine) if (smallest < 0 || this.keys[s]! < this.keys[smallest]!) smallest = s;
    if (smallest >= 0 && key > this.keys[smallest]!) {
      this.keys[smallest] = key;
      this.write(smallest, images, labels, i);
    }
  }

  /** Classes in memory in order of first appearance, plus `label`, each with its slot count. */
  private classesInMemory(label: number): Map<number, number> {
    const order = this.classOrder;
    if (!order.includes(label)) order.push(label);
    const counts = new Map<number, number>(order.map((c) => [c, 0] as const));
    for (let s = 0; s < this.filled; s++) counts.set(this.labels[s]!, (counts.get(this.labels[s]!) ?? 0) + 1);
    return counts;
  }

  private slotsOf(label: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.filled; s++) if (this.labels[s] === label) out.push(s);
    return out;
  }

  /** Drops the smallest keys of class `c` until it holds `share` slots (moving the last slot into each hole). */
  private trimClass(c: number, share: number): void {
    let mine = this.slotsOf(c);
    while (mine.length > share) {
      let smallest = mine[0]!;
      for (const s of mine) if (this.keys[s]! < this.keys[smallest]!) smallest = s;
      const last = --this.filled;
      if (smallest !== last) {
        this.images.copyWithin(smallest * this.imageBytes, last * this.imageBytes, (last + 1) * this.imageBytes);
        this.labels[smallest] = this.labels[last]!;
        this.keys[smallest] = this.keys[last]!;
      }
      mine = this.slotsOf(c);
    }
  }
}

/** Class `c`'s share of `capacity` slots among `classes` (in order of first appearance). */
function shareOf(capacity: number, classes: Map<number, number>, c: number): number {
  const order = [...classes.keys()];
  const base = Math.floor(capacity / order.length);
  return base + (order.indexOf(c) < capacity % order.length ? 1 : 0);
}
