/**
 * RoTTA's category-balanced sampling with timeliness and uncertainty (CSTU), as in the authors'
 * `core/utils/memory.py` (BIT-DA/RoTTA). Plain JavaScript over an opaque payload `T` (the method
 * stores image tensors), so the replacement rule can be tested without tensors.
 *
 * Rule of the code (the paper's Alg. 1 in words, but these details are the code's):
 *  - every item has a score `lambdaT * sigmoid(age / capacity) + lambdaU * uncertainty / ln(K)`;
 *    a new item has age 0, so its score is `lambdaT / 2 + lambdaU * u / ln(K)`;
 *  - the per-class quota is `capacity / K`, a fraction (6.4 for 64 and 10): a class may hold
 *    ceil(quota) items;
 *  - a new item of a class still under its quota is stored at once while the bank has room;
 *    when the bank is full it competes with the items of the classes that hold the most items;
 *    a new item of a class at its quota competes with that class's own items only, even when
 *    the bank is not full;
 *  - "competes": the highest-scoring candidate (the last one among equal scores, `>=` in the
 *    code) is evicted if its score is strictly above the new item's; otherwise the new item is
 *    dropped;
 *  - after every offer, stored or not, every stored item (the new one too) ages by one.
 */

export interface MemoryItem<T> {
  readonly data: T;
  /** The class the item is filed under (the teacher's pseudo-label). */
  readonly cls: number;
  /** Entropy of the teacher's prediction for the item. */
  readonly uncertainty: number;
  /** Offers to the bank since the item was stored (1 right after its own offer). */
  age: number;
}

/** What one offer did: whether the new item was stored, and the payload it pushed out. */
export interface Offer<T> {
  stored: boolean;
  evicted?: T;
}

/**
 * RoTTA's time-aware weight of a memory item whose age, divided by the capacity, is `a`:
 * `exp(-a) / (1 + exp(-a))`, i.e. sigmoid(-a): 1/2 for a fresh item, falling as it ages.
 */
export function timelinessWeight(a: number): number {
  return Math.exp(-a) / (1 + Math.exp(-a));
}

export class CategoryBalancedMemory<T> {
  /** The per-class quota, `capacity / numClasses` (not rounded, as in the code). */
  readonly perClass: number;
  private readonly classes: MemoryItem<T>[][];
  /** ln(K): normalises the uncertainty to [0, 1] (guarded for a one-class head, where the code divides by 0). */
  private readonly entropyScale: number;

  constructor(
    readonly capacity: number,
    readonly numClasses: number,
    readonly lambdaT = 1,
    readonly lambdaU = 1,
  ) {
    if (!(capacity >= 1) || !Number.isInteger(capacity)) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    if (!(numClasses >= 1) || !Number.isInteger(numClasses)) throw new RangeError(`numClasses must be a positive integer, got ${numClasses}`);
    this.perClass = capacity / numClasses;
    this.classes = Array.from({ length: numClasses }, () => []);
    this.entropyScale = numClasses > 1 ? Math.log(numClasses) : 1;
  }

  /** The replacement score: older and more uncertain items score higher and go first. */
  score(age: number, uncertainty: number): number {
    return this.lambdaT / (1 + Math.exp(-age / this.capacity)) + (this.lambdaU * uncertainty) / this.entropyScale;
  }

  get size(): number {
    return this.classes.reduce((n, c) => n + c.length, 0);
  }

  /** Items per class, in class order. */
  occupancy(): number[] {
    return this.classes.map((c) => c.length);
  }

  /** Offers a new item of class `cls`; the caller owns (and frees) whatever is not stored or is evicted. */
  add(data: T, cls: number, uncertainty: number): Offer<T> {
    if (!Number.isInteger(cls) || cls < 0 || cls >= this.numClasses) throw new RangeError(`class ${cls} is outside 0..${this.numClasses - 1}`);
    const offer = this.makeRoom(cls, this.score(0, uncertainty));
    if (offer.stored) this.classes[cls]!.push({ data, cls, uncertainty, age: 0 });
    // The code ages after the insertion, so a new item already has age 1 when it is next read.
    for (const c of this.classes) for (const item of c) item.age++;
    return offer;
  }

  /** Every stored item, class by class and oldest insertion first within a class (the code's order). */
  items(): MemoryItem<T>[] {
    return this.classes.flat();
  }

  /** Removes every item and hands the payloads back (for freeing). */
  clear(): T[] {
    const all = this.items().map((i) => i.data);
    for (const c of this.classes) c.length = 0;
    return all;
  }

  private makeRoom(cls: number, newScore: number): Offer<T> {
    if (this.classes[cls]!.length < this.perClass) {
      if (this.size < this.capacity) return { stored: true };
      return this.evictFrom(this.majorityClasses(), newScore);
    }
    return this.evictFrom([cls], newScore);
  }

  /** The classes holding the most items (all of them on a tie). */
  private majorityClasses(): number[] {
    const counts = this.occupancy();
    const most = Math.max(...counts);
    return counts.flatMap((n, c) => (n === most ? [c] : []));
  }

  private evictFrom(candidates: number[], newScore: number): Offer<T> {
    let best: { cls: number; index: number; score: number } | undefined;
    for (const cls of candidates) {
      this.classes[cls]!.forEach((item, index) => {
        const s = this.score(item.age, item.uncertainty);
        // `>=`: among equal scores the last one scanned goes, as in the code.
        if (best === undefined || s >= best.score) best = { cls, index, score: s };
      });
    }
    // Empty candidate classes: the code stores the new item without evicting anything.
    if (best === undefined) return { stored: true };
    if (best.score <= newScore) return { stored: false };
    const [gone] = this.classes[best.cls]!.splice(best.index, 1);
    return { stored: true, evicted: gone!.data };
  }
}
