/**
 * domain_incremental: online continual learning over a sequence of domains, all classes in each
 * (the setting of Permuted/Rotated MNIST or CORe50-NI, here with corruptions as the domains).
 * Task t = domain t.
 *
 * Unlike `continual` (CTTA: the same test images under every corruption), a learner that trains
 * on the stream should not see an image twice, so by default the tasks get disjoint images:
 * a seeded permutation of the split cut into consecutive blocks of `samplesPerDomain`
 * (default floor(n / domains)). `disjoint: false` reuses one subset, reshuffled per task.
 *
 * Given an evaluation split, every task carries the same evaluation indices (all of the split,
 * or a seeded subset of `evalPerTask`), evaluated under that task's domain.
 */
import { z } from 'zod';

import { CttaError } from '../../errors.js';
import {
  assemble,
  domainSegments,
  pickSubset,
  positiveInt,
  prepare,
  range,
  reshuffled,
  resolveCount,
  resolveLabels,
  sortedSample,
  subsetPermutation,
  type DomainInput,
  type LabelSource,
  type Ordering,
  type Segment,
  type TaskInfo,
} from './common.js';

export const domainIncrementalParams = z
  .object({
    /** Images per task (default: floor(n / domains) when disjoint, else n). */
    samplesPerDomain: positiveInt.optional(),
    /** Give each task its own images (default true). */
    disjoint: z.boolean().default(true),
    /** At most this many held-out images per task (default: the whole evaluation split). */
    evalPerTask: positiveInt.optional(),
  })
  .strict();

export type DomainIncrementalParams = z.input<typeof domainIncrementalParams>;

export function domainIncremental(
  source: LabelSource,
  domainInputs: readonly DomainInput[] | undefined,
  params: DomainIncrementalParams | undefined,
  seed: number,
  evalSource?: LabelSource,
): Ordering {
  const kind = 'domain_incremental';
  const { labels, numClasses, domains, p, rng } = prepare(kind, domainIncrementalParams, source, domainInputs, params, seed);
  const n = labels.length;
  const taskPerDomain = (d: number): number => d;

  let count: number;
  let segments: Segment[];
  if (p.disjoint) {
    const fit = Math.floor(n / domains.length);
    count = resolveCount(kind, 'samplesPerDomain', p.samplesPerDomain, fit);
    if (count === 0) {
      throw new CttaError(
        `ordering "domain_incremental": ${n} images cannot be split over ${domains.length} domains without repeats`,
        { fix: 'set params.disjoint to false, or use fewer domains' },
      );
    }
    const perm = subsetPermutation(rng, n);
    segments = domainSegments(domains, (d) => perm.slice(d * count, (d + 1) * count), taskPerDomain);
  } else {
    const picked = pickSubset(kind, p.samplesPerDomain, n, rng);
    count = picked.count;
    segments = domainSegments(domains, (d) => reshuffled(rng, picked.subset, 'domain', d), taskPerDomain);
  }

  let evalIndices: Int32Array | undefined;
  if (evalSource !== undefined) {
    const ev = resolveLabels(kind, evalSource, 'evaluation labels');
    evalIndices = sortedSample(Int32Array.from(range(ev.labels.length)), p.evalPerTask, rng.fork('eval'));
  }
  const allClasses = range(numClasses);
  const tasks: TaskInfo[] = domains.map((dom, d) => {
    const task: TaskInfo = { id: d, name: dom.name, classes: allClasses, domain: d };
    if (evalIndices) task.evalIndices = evalIndices;
    return task;
  });

  return assemble({ kind, seed, params: { ...p, samplesPerDomain: count }, numClasses, domains, tasks }, segments);
}
