/**
 * The replay memory's defining properties: Algorithm R keeps every sample seen with probability
 * M/n; Mai et al.'s batched update draws every position of a batch against the count at the
 * batch's start; the class-balanced memory gives each class an equal share holding a uniform
 * sample of that class; retrieval is uniform without replacement; images are stored as uint8.
 */
import { describe, expect, it } from 'vitest';
import { ReplayBuffer, type ReplayPolicy } from '../src/methods/replay/replay-buffer.js';
import { Rng } from '../src/util/rng.js';

/** A buffer of 1-byte "images" whose pixel is the item's id (mod 256) and whose label is its id. */
function feed(policy: ReplayPolicy, capacity: number, batches: number[][], seed: number, labelOf = (id: number) => id): ReplayBuffer {
  const b = new ReplayBuffer({ capacity, imageBytes: 1, policy, rng: Rng.derive(seed, 'replay-test') });
  for (const ids of batches) b.update(Uint8Array.from(ids, (id) => id % 256), ids.map(labelOf));
  return b;
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const chunks = (ids: number[], size: number) => Array.from({ length: Math.ceil(ids.length / size) }, (_, k) => ids.slice(k * size, (k + 1) * size));

describe('replay buffer', () => {
  it('reservoir: after n samples each one is in memory with probability M/n, whatever its position', () => {
    const n = 50;
    const m = 10;
    const trials = 4000;
    const kept = new Float64Array(n);
    for (let t = 0; t < trials; t++) {
      const b = feed('reservoir', m, chunks(range(0, n), 7), t);
      expect(b.size).toBe(m);
      for (const id of b.storedLabels()) kept[id]! += 1;
    }
    // Binomial std of a frequency: sqrt(0.2 * 0.8 / 4000) = 0.0063; allow 5 std.
    for (let id = 0; id < n; id++) expect(Math.abs(kept[id]! / trials - m / n)).toBeLessThan(0.032);
  });

  it('batched (Mai et al.): every position of a batch draws against the count after the fill, last write wins', () => {
    // M = 1, item 0 stored; then a batch of 2: both draw U[0, 1) = slot 0, so item 2 always ends in
    // memory (exact reservoir would keep it with probability 1/3).
    for (let seed = 0; seed < 20; seed++) expect(Array.from(feed('batched', 1, [[0], [1, 2]], seed).storedLabels())).toEqual([2]);
    // Free slots are filled in order; the count grows by the whole batch.
    expect(Array.from(feed('batched', 4, [[0, 1], [2, 3]], 0).storedLabels())).toEqual([0, 1, 2, 3]);
    expect(feed('batched', 4, [[0, 1], [2, 3, 4, 5]], 0).seen).toBe(6);
    // Against a long stream (n0 = 40 after the fill): each of a batch's 8 positions enters with
    // 4/40, the first as often as the last.
    const entered = new Float64Array(8);
    const trials = 20000;
    for (let t = 0; t < trials; t++) {
      const b = feed('batched', 4, [...chunks(range(0, 40), 4), range(100, 8)], t);
      for (const id of b.storedLabels()) if (id >= 100) entered[id - 100]! += 1;
    }
    // Present at the end = entered and not overwritten by a later position of the same batch
    // drawing the same slot (1/40 each): 0.1 * (39/40)^(7 - i).
    // Std of a frequency ~0.002: 0.006 is 3 std, and tells M/n0 from M/(n0 + i) (0.085 at i = 7).
    entered.forEach((k, i) => expect(Math.abs(k / trials - 0.1 * (39 / 40) ** (7 - i))).toBeLessThan(0.006));
  });

  it('class-balanced: equal shares, each class a uniform sample of its own images; shares shrink as classes appear', () => {
    const m = 6;
    const trials = 3000;
    const kept = new Float64Array(40);
    for (let t = 0; t < trials; t++) {
      // Class 0: ids 0-19, then class 1: ids 20-39 (labels = class).
      const b = feed('class-balanced', m, chunks(range(0, 40), 5), t, (id) => (id < 20 ? 0 : 1));
      const labels = Array.from(b.storedLabels());
      expect(labels.filter((c) => c === 0).length).toBe(3);
      expect(labels.filter((c) => c === 1).length).toBe(3);
      // Which ids: the pixel holds the id.
      const { images } = b.sample(m);
      for (const id of images) kept[id]! += 1;
    }
    // Each class keeps 3 of its 20 images: 0.15 each (std 0.0065; allow 5 std).
    for (let id = 0; id < 40; id++) expect(Math.abs(kept[id]! / trials - 0.15)).toBeLessThan(0.033);
    // Seven slots over three classes: 3, 2, 2 by first appearance.
    const three = feed('class-balanced', 7, [range(0, 30)], 1, (id) => id % 3);
    expect([0, 1, 2].map((c) => Array.from(three.storedLabels()).filter((x) => x === c).length)).toEqual([3, 2, 2]);
  });

  it('samples uniformly without replacement, stores uint8 and counts its bytes', () => {
    const b = feed('reservoir', 8, [range(0, 8)], 0);
    const counts = new Float64Array(8);
    const rng = 2000;
    for (let t = 0; t < rng; t++) {
      const s = b.sample(3);
      expect(new Set(s.slots).size).toBe(3);
      s.slots.forEach((slot, i) => expect(s.labels[i]).toBe(b.storedLabels()[slot]));
      for (const slot of s.slots) counts[slot]! += 1;
    }
    for (const c of counts) expect(Math.abs(c / rng - 3 / 8)).toBeLessThan(0.06);
    expect(b.sample(20).slots.length).toBe(8);
    expect(b.stateBytes()).toBe(8 * 1 + 8 * 4);
    expect(() => b.update(new Uint8Array(3), [1, 2])).toThrow(/3 bytes of images for 2 labels/);
  });

  it('gather: the images of given slots in the order given (repeats allowed), only filled slots', () => {
    const b = new ReplayBuffer({ capacity: 6, imageBytes: 2, rng: Rng.derive(0, 'gather') });
    // Image of item k: bytes (10 k, 10 k + 1), so a mixed-up byte order would show.
    b.update(Uint8Array.from([0, 1, 10, 11, 20, 21, 30, 31]), [0, 1, 2, 3]);
    expect(Array.from(b.gather([2, 0, 2]))).toEqual([20, 21, 0, 1, 20, 21]);
    expect(b.gather([]).length).toBe(0);
    // It agrees with what sample() returns for the same slots.
    const s = b.sample(3);
    expect(Array.from(b.gather(s.slots))).toEqual(Array.from(s.images));
    // Slots 4 and 5 exist but hold nothing yet.
    expect(() => b.gather([4])).toThrow(/slot 4 is not one of the 4 filled slots/);
    expect(() => b.gather([-1])).toThrow(/slot -1/);
    expect(() => b.gather([1.5])).toThrow(/slot 1.5/);
  });

  it('is a pure function of its seed', () => {
    const a = feed('reservoir', 5, chunks(range(0, 100), 10), 7);
    const b = feed('reservoir', 5, chunks(range(0, 100), 10), 7);
    expect(Array.from(a.storedLabels())).toEqual(Array.from(b.storedLabels()));
    expect(Array.from(a.sample(5).slots)).toEqual(Array.from(b.sample(5).slots));
  });
});
