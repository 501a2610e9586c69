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
  checkSeed,
  parseParams,
  positiveInt,
  resolveCount,
  resolveDomains,
  resolveLabels,
  type DomainInput,
  type LabelSource,
  type Ordering,
  type Segment,
  type TaskInfo,
} from './common.js';
import { SeededRng } from './rng.js';

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
  checkSeed(kind, seed);
  const { labels, numClasses } = resolveLabels(kind, source);
  const domains = resolveDomains(kind, domainInputs);
  const p = parseParams(kind, domainIncrementalParams, params);
  const n = labels.length;
  const rng = new SeededRng(seed);
  const perm = rng.fork('subset').permutation(n);

  let count: number;
  const segments: Segment[] = [];
  if (p.disjoint) {
    const fit = Math.floor(n / domains.length);
    count = resolveCount(kind, 'samplesPerDomain', p.samplesPerDomain, fit);
    if (count === 0) {
      throw new CttaError(
        `ordering "domain_incremental": ${n} images cannot be split over ${domains.length} domains without repeats`,
        { fix: 'set params.disjoint to false, or use fewer domains' },
      );
    }
    domains.forEach((_, d) => segments.push({ indices: perm.slice(d * count, (d + 1) * count), domain: d, task: d }));
  } else {
    count = resolveCount(kind, 'samplesPerDomain', p.samplesPerDomain, n);
    const subset = perm.slice(0, count);
    domains.forEach((_, d) =>
      segments.push({ indices: rng.fork(`domain/${d}`).shuffle(subset.slice()), domain: d, task: d }),
    );
  }

  let evalIndices: Int32Array | undefined;
  if (evalSource !== undefined) {
    const ev = resolveLabels(kind, evalSource, 'evaluation labels');
    const m = ev.labels.length;
    evalIndices =
      p.evalPerTask !== undefined && p.evalPerTask < m
        ? rng.fork('eval').permutation(m).slice(0, p.evalPerTask).sort()
        : Int32Array.from({ length: m }, (_, i) => i);
  }
  const allClasses = Array.from({ length: numClasses }, (_, c) => c);
  const tasks: TaskInfo[] = domains.map((dom, d) => {
    const task: TaskInfo = { id: d, name: dom.name, classes: allClasses, domain: d };
    if (evalIndices) task.evalIndices = evalIndices;
    return task;
  });

  return assemble(
    { kind, seed, params: { ...p, samplesPerDomain: count }, numClasses, domains, tasks },
    segments,
  );
}
