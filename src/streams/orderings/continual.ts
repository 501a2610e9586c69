/**
 * continual: the CTTA protocol of CoTTA (Wang et al., CVPR 2022). Domains follow one another;
 * every domain shows the same `samplesPerDomain` images, drawn once as a seeded permutation of the
 * split, just as every CIFAR-10-C corruption file holds the same 10k test images. The model is
 * never reset between domains.
 */
import { z } from 'zod';

import {
  allClassesTask,
  assemble,
  checkSeed,
  parseParams,
  pickSubset,
  positiveInt,
  resolveCount,
  resolveDomains,
  resolveLabels,
  type DomainInput,
  type LabelSource,
  type Ordering,
  type OrderingName,
  type Segment,
} from './common.js';
import { SeededRng } from './rng.js';

export const continualParams = z
  .object({
    /** Images per domain (default: the whole split). */
    samplesPerDomain: positiveInt.optional(),
    /**
     * Re-shuffle the images for every domain. Default false: each domain shows them in the same
     * order, as the CIFAR-10-C files do (only the corruption changes at a domain boundary).
     */
    shufflePerDomain: z.boolean().default(false),
  })
  .strict();

export type ContinualParams = z.input<typeof continualParams>;

/** Shared by continual and reset_each_shift, which differ only in `resetAt`. */
export function continualCore(
  kind: OrderingName,
  source: LabelSource,
  domainInputs: readonly DomainInput[] | undefined,
  params: unknown,
  seed: number,
): Ordering {
  checkSeed(kind, seed);
  const { labels, numClasses } = resolveLabels(kind, source);
  const domains = resolveDomains(kind, domainInputs);
  const p = parseParams(kind, continualParams, params);
  const count = resolveCount(kind, 'samplesPerDomain', p.samplesPerDomain, labels.length);
  const rng = new SeededRng(seed);
  const subset = pickSubset(rng.fork('subset'), labels.length, count);
  const segments: Segment[] = domains.map((_, d) => ({
    indices: p.shufflePerDomain ? rng.fork(`domain/${d}`).shuffle(subset.slice()) : subset,
    domain: d,
    task: 0,
  }));
  return assemble(
    {
      kind,
      seed,
      params: { ...p, samplesPerDomain: count },
      numClasses,
      domains,
      tasks: [allClassesTask(numClasses, null)],
    },
    segments,
  );
}

export function continual(
  source: LabelSource,
  domains: readonly DomainInput[] | undefined,
  params: ContinualParams | undefined,
  seed: number,
): Ordering {
  return continualCore('continual', source, domains, params, seed);
}
