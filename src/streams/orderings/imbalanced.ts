/**
 * imbalanced: a long-tailed (class-imbalanced) subset of the split, shown under each domain in
 * turn as in `continual`. Profiles, with classes ranked by `classOrder` or a seeded permutation
 * (rank 0 = the head class):
 *
 *   exponential  n_r = round(nMax * ratio^(-r / (C - 1)))   (Cui et al., CVPR 2019 "CIFAR-LT";
 *                the test-time label-shift setting of DELTA, Zhao et al., ICLR 2023), so
 *                max / min = ratio up to rounding;
 *   zipf         n_r = round(nMax / (r + 1)^a)              (Zipf's law; a = 1 by default);
 *   lame         the protocol of the LAME code (Boudiaf et al., CVPR 2022, `zipf_imbalance` in
 *                fiveai/LAME src/data/build.py): class shares are C random Zipf(a = 2) variates,
 *                normalised; n_c = floor(n * share_c); the draw is rejected while the top 10% of
 *                classes hold >= 90% of the samples; each class then draws n_c images WITH
 *                replacement, so heads repeat images. Shares follow class index, not a ranking.
 *
 * Counts never drop below 1 image. nMax defaults to the largest value every class can supply
 * without repeats. The selected images are shuffled together ("iid", LAME's i.i.d. imbalanced
 * setting) or shown class after class in a seeded class order ("by_class", its non-i.i.d. one).
 */
import { z } from 'zod';

import { CttaError } from '../../errors.js';
import {
  assemble,
  checkClassOrder,
  concat,
  domainSegments,
  indicesByClass,
  positiveInt,
  prepare,
  singleTaskBase,
  subsetPermutation,
  type DomainInput,
  type LabelSource,
  type Ordering,
} from './common.js';
import { SeededRng } from './rng.js';

export const imbalancedParams = z
  .object({
    profile: z.enum(['exponential', 'zipf', 'lame']).default('exponential'),
    /** exponential: imbalance ratio n_max / n_min (default 10). */
    ratio: z.number().min(1).optional(),
    /** zipf: exponent (default 1, > 0); lame: Zipf variate exponent (default 2, > 1). */
    a: z.number().positive().optional(),
    /** exponential, zipf: images of the head class (default: the most every class can supply). */
    nMax: positiveInt.optional(),
    /** exponential, zipf: class ranking, head first; must list every class. Default: seeded. */
    classOrder: z.array(z.number().int().min(0)).min(1).optional(),
    /** "iid": shuffle the selection; "by_class": one class after another. */
    grouping: z.enum(['iid', 'by_class']).default('iid'),
    /** Re-shuffle for every domain (default false: the same order in every domain). */
    shufflePerDomain: z.boolean().default(false),
    /** lame: give up after this many rejected draws. */
    maxAttempts: positiveInt.default(10000),
  })
  .strict();

export type ImbalancedParams = z.input<typeof imbalancedParams>;

function fail(message: string, fix?: string): never {
  throw new CttaError(`ordering "imbalanced": ${message}`, fix === undefined ? {} : { fix });
}

/** Relative size of rank r (1 for the head) under a deterministic profile. */
function shareOf(profile: 'exponential' | 'zipf', r: number, numClasses: number, ratio: number, a: number): number {
  if (profile === 'zipf') return 1 / Math.pow(r + 1, a);
  return numClasses === 1 ? 1 : Math.pow(ratio, -r / (numClasses - 1));
}

function countsFor(nMax: number, shares: readonly number[]): number[] {
  return shares.map((s) => Math.max(1, Math.round(nMax * s)));
}

/** LAME's random Zipf shares with its "top 10% of classes < 90% of samples" rejection rule. */
function lameCounts(numClasses: number, total: number, a: number, maxAttempts: number, rng: SeededRng): number[] {
  // LAME slices the top int(0.1 * C) classes; with C < 10 that is 0 classes and its loop never
  // ends, so at least one class is used here.
  const top = Math.max(1, Math.floor(0.1 * numClasses));
  const limit = Math.floor(0.9 * total);
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const draws = Array.from({ length: numClasses }, () => rng.zipf(a));
    const sum = draws.reduce((x, y) => x + y, 0);
    const counts = draws.map((d) => Math.floor((total * d) / sum));
    const sorted = [...counts].sort((x, y) => y - x);
    const head = sorted.slice(0, top).reduce((x, y) => x + y, 0);
    if (head < limit) return counts;
  }
  return fail(
    `profile "lame": no Zipf(a = ${a}) draw in ${maxAttempts} attempts left the top ${top} classes under 90% of the samples`,
    'raise params.maxAttempts or lower params.a',
  );
}

export function imbalanced(
  source: LabelSource,
  domainInputs: readonly DomainInput[] | undefined,
  params: ImbalancedParams | undefined,
  seed: number,
): Ordering {
  const kind = 'imbalanced';
  const { labels, numClasses, domains, p, rng } = prepare(kind, imbalancedParams, source, domainInputs, params, seed);
  // Same per-class image order as the other orderings' subset for this seed.
  const byClass = indicesByClass(labels, numClasses, subsetPermutation(rng, labels.length));
  const available = byClass.map((m) => m.length);

  if (p.ratio !== undefined && p.profile !== 'exponential') fail(`params.ratio applies to profile "exponential", not "${p.profile}"`);
  if (p.a !== undefined && p.profile === 'exponential') fail('params.a applies to profiles "zipf" and "lame", not "exponential"');
  const counts = new Array<number>(numClasses).fill(0);
  let resolved: Record<string, unknown>;
  let withReplacement = false;

  if (p.profile === 'lame') {
    if (p.nMax !== undefined) fail('params.nMax does not apply to profile "lame" (it sizes classes from the whole split)');
    if (p.classOrder !== undefined) fail('params.classOrder does not apply to profile "lame" (its shares are random per class)');
    const a = p.a ?? 2;
    if (!(a > 1)) fail(`params.a must be > 1 for profile "lame" (a Zipf variate), got ${a}`);
    const drawn = lameCounts(numClasses, labels.length, a, p.maxAttempts, rng.fork('lame'));
    drawn.forEach((c, cls) => (counts[cls] = available[cls]! > 0 ? c : 0));
    withReplacement = true;
    resolved = { ...p, a };
  } else {
    let ranking: number[];
    if (p.classOrder) {
      checkClassOrder(kind, p.classOrder, numClasses, true);
      ranking = [...p.classOrder];
    } else {
      ranking = Array.from(rng.fork('classes').permutation(numClasses));
    }
    const ratio = p.ratio ?? 10;
    const a = p.a ?? 1;
    const shares = ranking.map((_, r) => shareOf(p.profile as 'exponential' | 'zipf', r, numClasses, ratio, a));
    let nMax: number;
    if (p.nMax !== undefined) {
      nMax = p.nMax;
    } else {
      nMax = Math.min(...ranking.map((c, r) => Math.floor(available[c]! / shares[r]!)));
      while (nMax > 0 && countsFor(nMax, shares).some((n, r) => n > available[ranking[r]!]!)) nMax--;
      if (nMax === 0) fail('some class has no images, so no class can be sized', 'check the labels, or pass params.classOrder');
    }
    const wanted = countsFor(nMax, shares);
    wanted.forEach((n, r) => {
      const c = ranking[r]!;
      if (n > available[c]!) {
        fail(
          `params.nMax = ${nMax} asks ${n} images of class ${c} (rank ${r}), which has only ${available[c]}`,
          'lower params.nMax, or omit it to use the largest value that fits',
        );
      }
      counts[c] = n;
    });
    resolved = p.profile === 'zipf' ? { ...p, a, nMax, classOrder: ranking } : { ...p, ratio, nMax, classOrder: ranking };
  }

  const pick = rng.fork('pick');
  const perClass: Int32Array[] = counts.map((n, c) => {
    const members = byClass[c]!;
    if (!withReplacement) return members.slice(0, n);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = members[pick.int(0, members.length - 1)]!;
    return out;
  });

  const arrange = (r: SeededRng): Int32Array => {
    if (p.grouping === 'iid') return r.shuffle(concat(perClass));
    return concat(Array.from(r.permutation(numClasses), (c) => perClass[c]!));
  };
  const base = arrange(rng.fork('arrange'));
  const segments = domainSegments(domains, (d) => (p.shufflePerDomain ? arrange(rng.fork('domain', d)) : base));
  return assemble(singleTaskBase(kind, seed, { ...resolved, classCounts: counts }, numClasses, domains), segments);
}
