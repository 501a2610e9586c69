import { describe, expect, it } from 'vitest';

import { CttaError } from '../src/errors.js';
import {
  SeededRng,
  classIncremental,
  continual,
  dirichlet,
  domainIncremental,
  gradual,
  imbalanced,
  isOrderingName,
  makeOrdering,
  mixed,
  orderingNames,
  registerOrdering,
  resetEachShift,
  type DomainInput,
  type Ordering,
} from '../src/streams/orderings/index.js';

/** 10 classes x `perClass` images, labels interleaved (0, 1, ..., 9, 0, 1, ...). */
function makeLabels(perClass = 100, classes = 10): Int32Array {
  return Int32Array.from({ length: perClass * classes }, (_, i) => i % classes);
}

const LABELS = makeLabels();
const THREE: DomainInput[] = [
  { corruption: 'gaussian_noise', severity: 5 },
  { corruption: 'fog', severity: 3 },
  { corruption: 'jpeg', severity: 5 },
];

/** Positions [start, end) of domain `d`'s (contiguous) block. */
function positionsOf(o: Ordering, d: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < o.length; p++) if (o.domain[p] === d) out.push(p);
  return out;
}

function labelsAt(o: Ordering, positions: number[], labels = LABELS): number[] {
  return positions.map((p) => labels[o.order[p]!]!);
}

function meanRunLength(seq: readonly number[]): number {
  let runs = 1;
  for (let i = 1; i < seq.length; i++) if (seq[i] !== seq[i - 1]) runs++;
  return seq.length / runs;
}

/** Mean run length of a uniformly random arrangement of the same multiset of labels. */
function iidMeanRunLength(seq: readonly number[]): number {
  const n = seq.length;
  const counts = new Map<number, number>();
  for (const y of seq) counts.set(y, (counts.get(y) ?? 0) + 1);
  let same = 0;
  for (const c of counts.values()) same += (c * (c - 1)) / (n * (n - 1));
  return n / (1 + (n - 1) * (1 - same));
}

function sorted(xs: ArrayLike<number>): number[] {
  return Array.from(xs).sort((a, b) => a - b);
}

function expectCttaError(fn: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(CttaError);
  for (const f of fragments) expect((caught as Error).message).toContain(f);
}

describe('SeededRng', () => {
  it('is deterministic per (seed, label) and differs across both', () => {
    const a = new SeededRng(7).fork('x').permutation(50);
    expect(new SeededRng(7).fork('x').permutation(50)).toEqual(a);
    expect(new SeededRng(8).fork('x').permutation(50)).not.toEqual(a);
    expect(new SeededRng(7).fork('y').permutation(50)).not.toEqual(a);
  });

  it('draws Dirichlet proportions that sum to 1, even for a tiny concentration', () => {
    const rng = new SeededRng(1);
    for (const alpha of [1e-4, 0.1, 1, 100]) {
      const q = rng.dirichlet(alpha, 10);
      expect(q.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 10);
      expect(q.every((x) => x >= 0 && Number.isFinite(x))).toBe(true);
    }
    // Gamma(k) has mean k: a rough check of the sampler.
    let sum = 0;
    for (let i = 0; i < 4000; i++) sum += Math.exp(rng.logGamma(2.5));
    expect(sum / 4000).toBeGreaterThan(2.3);
    expect(sum / 4000).toBeLessThan(2.7);
  });
});

describe('continual / reset_each_shift', () => {
  it('plays the same image subset under each domain in turn', () => {
    const o = continual(LABELS, THREE, { samplesPerDomain: 200 }, 3);
    expect(o.length).toBe(600);
    expect(o.domains.map((d) => d.name)).toEqual(['gaussian_noise-5', 'fog-3', 'jpeg-5']);
    const first = Array.from(o.order.subarray(0, 200));
    expect(new Set(first).size).toBe(200);
    expect(Array.from(o.order.subarray(200, 400))).toEqual(first);
    expect(Array.from(o.domain.subarray(200, 400)).every((d) => d === 1)).toBe(true);
    expect(Array.from(o.severity.subarray(200, 400)).every((s) => s === 3)).toBe(true);
    expect(o.resetAt).toBeUndefined();
    // shufflePerDomain keeps the set, changes the order
    const s = continual(LABELS, THREE, { samplesPerDomain: 200, shufflePerDomain: true }, 3);
    expect(sorted(s.order.subarray(200, 400))).toEqual(sorted(first));
    expect(Array.from(s.order.subarray(200, 400))).not.toEqual(first);
  });

  it('defaults to the whole split and one clean domain', () => {
    const o = continual(LABELS, undefined, undefined, 0);
    expect(o.length).toBe(LABELS.length);
    expect(o.domains).toEqual([{ name: 'clean', corruption: 'none', severity: 0 }]);
    expect(sorted(o.order)).toEqual(sorted(Int32Array.from(LABELS.keys())));
  });

  it('reset_each_shift marks the domain boundaries', () => {
    const o = resetEachShift(LABELS, THREE, { samplesPerDomain: 100 }, 1);
    expect(o.resetAt).toEqual([100, 200]);
    expect(o.order).toEqual(continual(LABELS, THREE, { samplesPerDomain: 100 }, 1).order);
  });
});

describe('gradual', () => {
  const corruptions: DomainInput[] = [{ corruption: 'fog' }, { corruption: 'snow' }, { corruption: 'frost' }];

  function segmentSeverities(o: Ordering, size: number): number[] {
    const out: number[] = [];
    for (let p = 0; p < o.length; p += size) out.push(o.severity[p]!);
    return out;
  }

  it('follows CoTTA: 5..1 for the first corruption, then 1..5..1, type changes at severity 1', () => {
    const o = gradual(LABELS, corruptions, { samplesPerDomain: 10 }, 0);
    expect(o.length).toBe(10 * (5 + 9 + 9));
    expect(segmentSeverities(o, 10)).toEqual([5, 4, 3, 2, 1, 1, 2, 3, 4, 5, 4, 3, 2, 1, 1, 2, 3, 4, 5, 4, 3, 2, 1]);
    // each (corruption, severity) pair is one domain
    expect(o.domains).toHaveLength(15);
    expect(o.domains[0]).toEqual({ name: 'fog-5', corruption: 'fog', severity: 5 });
    expect(o.domains[o.domain[o.length - 1]!]!.name).toBe('frost-1');
    // no severity jumps by more than 1 anywhere in the stream
    for (let p = 1; p < o.length; p++) expect(Math.abs(o.severity[p]! - o.severity[p - 1]!)).toBeLessThanOrEqual(1);
  });

  it('start "full" sweeps 1..5..1 for the first corruption too', () => {
    const o = gradual(LABELS, corruptions.slice(0, 1), { samplesPerDomain: 5, start: 'full' }, 0);
    expect(segmentSeverities(o, 5)).toEqual([1, 2, 3, 4, 5, 4, 3, 2, 1]);
  });

  it('rejects explicit severities', () => {
    expectCttaError(() => gradual(LABELS, [{ corruption: 'fog', severity: 3 }], {}, 0), 'domains[0].severity');
  });
});

describe('mixed', () => {
  it('contains every (domain, image) position exactly once, interleaved', () => {
    const o = mixed(LABELS, THREE, { samplesPerDomain: 300 }, 5);
    expect(o.length).toBe(900);
    const pairs = new Set<string>();
    for (let p = 0; p < o.length; p++) pairs.add(`${o.domain[p]}:${o.order[p]}`);
    expect(pairs.size).toBe(900);
    const reference = continual(LABELS, THREE, { samplesPerDomain: 300 }, 5);
    for (let d = 0; d < 3; d++) {
      const mine = sorted(positionsOf(o, d).map((p) => o.order[p]!));
      expect(mine).toEqual(sorted(reference.order.subarray(0, 300)));
    }
    // mixed, not blocks: the first 30 positions hold more than one domain
    expect(new Set(o.domain.subarray(0, 30)).size).toBeGreaterThan(1);
    for (let p = 0; p < o.length; p++) expect(o.severity[p]).toBe(o.domains[o.domain[p]!]!.severity);
  });
});

describe('dirichlet', () => {
  it('delta -> 0 gives long single-class runs; each sample once per domain', () => {
    const o = dirichlet(LABELS, THREE, { delta: 0.001 }, 11);
    expect(o.length).toBe(3 * LABELS.length);
    for (let d = 0; d < 3; d++) {
      const pos = positionsOf(o, d);
      expect(sorted(pos.map((p) => o.order[p]!))).toEqual(sorted(Int32Array.from(LABELS.keys())));
      expect(meanRunLength(labelsAt(o, pos))).toBeGreaterThan(50);
    }
  });

  it('large delta with within "shuffled" is close to i.i.d.', () => {
    const o = dirichlet(LABELS, THREE.slice(0, 1), { delta: 100, within: 'shuffled' }, 11);
    const seq = labelsAt(o, positionsOf(o, 0));
    const expected = iidMeanRunLength(seq);
    expect(expected).toBeCloseTo(1.11, 1);
    expect(Math.abs(meanRunLength(seq) - expected) / expected).toBeLessThan(0.1);
  });

  it('large delta with the published "grouped" layout keeps class pieces of ~n_c/K', () => {
    const o = dirichlet(LABELS, THREE.slice(0, 1), { delta: 100 }, 11);
    const run = meanRunLength(labelsAt(o, positionsOf(o, 0)));
    expect(run).toBeGreaterThan(5);
    expect(run).toBeLessThan(20);
  });

  it('run length decreases as delta grows', () => {
    const runs = [0.01, 0.1, 1, 10].map((delta) => {
      const o = dirichlet(LABELS, undefined, { delta, within: 'shuffled' }, 2);
      return meanRunLength(labelsAt(o, positionsOf(o, 0)));
    });
    for (let i = 1; i < runs.length; i++) expect(runs[i]!).toBeLessThan(runs[i - 1]!);
  });

  it('delta = 0 sorts each domain by class', () => {
    const o = dirichlet(LABELS, THREE.slice(0, 2), { delta: 0, samplesPerDomain: 500 }, 4);
    for (let d = 0; d < 2; d++) {
      const seq = labelsAt(o, positionsOf(o, d));
      expect(seq).toEqual([...seq].sort((a, b) => a - b));
    }
  });

  it('every chunk holds >= minSize and the draw is seeded', () => {
    const a = dirichlet(LABELS, THREE, { delta: 0.05, minSize: 20 }, 9);
    expect(dirichlet(LABELS, THREE, { delta: 0.05, minSize: 20 }, 9)).toEqual(a);
    expect(dirichlet(LABELS, THREE, { delta: 0.05, minSize: 20 }, 10).order).not.toEqual(a.order);
    expect(a.params).toMatchObject({ delta: 0.05, chunks: 10, minSize: 20, cap: true, within: 'grouped' });
  });

  it('reports impossible and invalid parameters by field', () => {
    expectCttaError(() => dirichlet(LABELS, undefined, { minSize: 200 }, 0), 'params.minSize');
    expectCttaError(() => dirichlet(LABELS, undefined, { delta: -1 }, 0), 'params.delta', '-1');
    expectCttaError(() => dirichlet(LABELS, undefined, { within: 'sideways' } as never, 0), 'params.within');
    expectCttaError(() => dirichlet(LABELS, undefined, { detla: 1 } as never, 0), 'params.detla');
  });
});

describe('class_incremental', () => {
  const TEST = makeLabels(20);

  it('task t contains only its classes; tasks follow one another', () => {
    const o = classIncremental(LABELS, undefined, { nTasks: 5 }, 42, TEST);
    expect(o.tasks).toHaveLength(5);
    const all = o.tasks.flatMap((t) => t.classes);
    expect(sorted(all)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(all).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // seeded class order
    expect(o.length).toBe(LABELS.length);
    expect(new Set(o.order).size).toBe(LABELS.length);
    for (let p = 0; p < o.length; p++) {
      const t = o.task[p]!;
      expect(o.tasks[t]!.classes).toContain(LABELS[o.order[p]!]);
      if (p > 0) expect(t).toBeGreaterThanOrEqual(o.task[p - 1]!);
    }
    for (const t of o.tasks) {
      expect(t.evalIndices).toBeDefined();
      const ev = Array.from(t.evalIndices!);
      expect(ev).toHaveLength(40);
      expect(ev.every((i) => t.classes.includes(TEST[i]!))).toBe(true);
      expect(ev).toEqual(sorted(ev));
    }
    // within a task the samples are shuffled, not in dataset order
    const firstTask = Array.from(o.order.subarray(0, 200));
    expect(firstTask).not.toEqual(sorted(firstTask));
  });

  it('honours a given class order, uneven task sizes and caps', () => {
    const o = classIncremental(
      LABELS,
      undefined,
      { classOrder: [9, 8, 7, 6, 5, 4], classesPerTask: [3, 2, 1], samplesPerTask: 50, evalPerTask: 7 },
      0,
      TEST,
    );
    expect(o.tasks.map((t) => t.classes)).toEqual([[9, 8, 7], [6, 5], [4]]);
    expect(o.length).toBe(150);
    expect(o.tasks.map((t) => t.evalIndices!.length)).toEqual([7, 7, 7]);
  });

  it('rejects task counts that do not divide the classes', () => {
    expectCttaError(() => classIncremental(LABELS, undefined, { nTasks: 3 }, 0), 'params.nTasks');
    expectCttaError(() => classIncremental(LABELS, undefined, { classOrder: [1, 1] }, 0), 'params.classOrder[1]');
    expectCttaError(() => classIncremental(LABELS, THREE, {}, 0), 'domains');
  });
});

describe('domain_incremental', () => {
  it('one task per domain, all classes, disjoint images by default', () => {
    const o = domainIncremental(LABELS, THREE, undefined, 1, makeLabels(5));
    expect(o.tasks.map((t) => t.name)).toEqual(['gaussian_noise-5', 'fog-3', 'jpeg-5']);
    expect(o.length).toBe(3 * 333);
    expect(new Set(o.order).size).toBe(o.length);
    for (let p = 0; p < o.length; p++) expect(o.task[p]).toBe(o.domain[p]);
    expect(o.tasks[0]!.evalIndices).toHaveLength(50);
    const shared = domainIncremental(LABELS, THREE, { disjoint: false, samplesPerDomain: 100 }, 1);
    expect(sorted(shared.order.subarray(0, 100))).toEqual(sorted(shared.order.subarray(100, 200)));
  });
});

describe('imbalanced', () => {
  function classCounts(o: Ordering, d = 0): number[] {
    const counts = new Array<number>(10).fill(0);
    for (let p = 0; p < o.length; p++) if (o.domain[p] === d) counts[LABELS[o.order[p]!]!]!++;
    return counts;
  }

  it('exponential profile: max / min equals the ratio', () => {
    for (const ratio of [10, 100]) {
      const o = imbalanced(LABELS, THREE.slice(0, 2), { ratio }, 3);
      const counts = classCounts(o);
      expect(Math.max(...counts)).toBe(100);
      expect(Math.max(...counts) / Math.min(...counts)).toBeCloseTo(ratio, 5);
      expect(classCounts(o, 1)).toEqual(counts);
      expect(o.params['classCounts']).toEqual(counts);
      // counts decay geometrically along the (seeded) ranking
      const ranking = o.params['classOrder'] as number[];
      for (let r = 0; r < 10; r++) expect(counts[ranking[r]!]).toBe(Math.round(100 * ratio ** (-r / 9)));
      // no image twice within a domain
      const first = positionsOf(o, 0).map((p) => o.order[p]!);
      expect(new Set(first).size).toBe(first.length);
    }
  });

  it('zipf profile: n_r = nMax / (r + 1)^a', () => {
    const o = imbalanced(LABELS, undefined, { profile: 'zipf', a: 1, nMax: 60, classOrder: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }, 0);
    expect(classCounts(o)).toEqual([60, 30, 20, 15, 12, 10, 9, 8, 7, 6]);
  });

  it('lame profile: random Zipf shares with the head-mass rejection rule', () => {
    const o = imbalanced(LABELS, undefined, { profile: 'lame' }, 5);
    const counts = classCounts(o);
    expect(counts.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(LABELS.length);
    expect(Math.max(...counts)).toBeLessThan(0.9 * LABELS.length);
  });

  it('class permutation depends on the seed; grouping by_class gives single-class blocks', () => {
    const a = imbalanced(LABELS, undefined, { ratio: 10 }, 1).params['classOrder'];
    const b = imbalanced(LABELS, undefined, { ratio: 10 }, 2).params['classOrder'];
    expect(a).not.toEqual(b);
    const g = imbalanced(LABELS, undefined, { ratio: 10, grouping: 'by_class' }, 1);
    const seq = labelsAt(g, positionsOf(g, 0));
    let changes = 0;
    for (let i = 1; i < seq.length; i++) if (seq[i] !== seq[i - 1]) changes++;
    expect(changes).toBe(9);
  });

  it('validates its parameters', () => {
    expectCttaError(() => imbalanced(LABELS, undefined, { ratio: 0.5 }, 0), 'params.ratio');
    expectCttaError(() => imbalanced(LABELS, undefined, { nMax: 500 }, 0), 'params.nMax');
    expectCttaError(() => imbalanced(LABELS, undefined, { profile: 'zipf', ratio: 5 }, 0), 'params.ratio');
  });
});

describe('all orderings', () => {
  it('are deterministic for a seed and differ across seeds', () => {
    for (const name of orderingNames()) {
      const domains = name === 'gradual' ? [{ corruption: 'fog' }] : name === 'class_incremental' ? undefined : THREE;
      const params = name === 'gradual' ? { samplesPerDomain: 50 } : {};
      const a = makeOrdering(name, LABELS, domains, params, 123, LABELS);
      const b = makeOrdering(name, LABELS, domains, params, 123, LABELS);
      const c = makeOrdering(name, LABELS, domains, params, 124, LABELS);
      expect(b, name).toEqual(a);
      expect(Array.from(c.order), name).not.toEqual(Array.from(a.order));
      expect(a.domain.length).toBe(a.length);
      expect(a.severity.length).toBe(a.length);
      expect(a.task.length).toBe(a.length);
    }
  });

  it('validate domains, seeds and names with CttaErrors', () => {
    expectCttaError(() => continual(LABELS, [{ corruption: 'fog', severity: 7 }], {}, 0), 'domains[0].severity');
    expectCttaError(() => continual(LABELS, [{ corruption: '' }], {}, 0), 'domains[0].corruption');
    expectCttaError(() => continual(LABELS, [{ corruption: 'fog' }, { corruption: 'fog' }], {}, 0), 'domains[1]');
    expectCttaError(() => continual(LABELS, THREE, {}, -1), 'seed');
    expectCttaError(() => continual(LABELS, THREE, { samplesPerDomain: 5000 }, 0), 'params.samplesPerDomain', '1000');
    expectCttaError(() => makeOrdering('shuffled', LABELS, THREE, {}, 0), 'unknown ordering');
  });

  it('accept a dataset-like source and use its class count', () => {
    const o = continual({ labels: LABELS, classNames: Array.from({ length: 12 }, (_, i) => `c${i}`) }, THREE, {}, 0);
    expect(o.numClasses).toBe(12);
  });
});

describe('registerOrdering', () => {
  it('adds an ordering makeOrdering dispatches to, listed after the shipped ones', () => {
    expect(isOrderingName('reversed')).toBe(false);
    registerOrdering({
      name: 'reversed',
      description: 'continual, each domain shown back to front',
      create: (source, domains, params, seed) => {
        const o = continual(source, domains, params as Parameters<typeof continual>[2], seed);
        return { ...o, kind: 'reversed', order: o.order.slice().reverse(), domain: o.domain.slice().reverse(), severity: o.severity.slice().reverse() };
      },
    });
    expect(isOrderingName('reversed')).toBe(true);
    expect(orderingNames()).toEqual(['continual', 'reset_each_shift', 'gradual', 'mixed', 'dirichlet', 'class_incremental', 'domain_incremental', 'imbalanced', 'reversed']);
    const a = makeOrdering('reversed', LABELS, THREE, { samplesPerDomain: 10 }, 4);
    const c = continual(LABELS, THREE, { samplesPerDomain: 10 }, 4);
    expect(a.kind).toBe('reversed');
    expect(Array.from(a.order)).toEqual(Array.from(c.order).reverse());
    let caught: unknown;
    try {
      makeOrdering('reversd', LABELS, THREE, {}, 0);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CttaError);
    expect((caught as CttaError).fix).toMatch(/^use one of: continual, .*imbalanced, reversed$/);
  });
});
