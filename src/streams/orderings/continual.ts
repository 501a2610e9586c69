/**
 * continual: the CTTA protocol of CoTTA (Wang et al., CVPR 2022). Domains follow one another;
 * every domain shows the same `samplesPerDomain` images, drawn once as a seeded permutation of the
 * split, just as every CIFAR-10-C corruption file holds the same 10k test images. The model is
 * never reset between domains.
 */
import { z } from 'zod';

import {
  assemble,
  domainSegments,
  pickSubset,
  positiveInt,
  prepare,
  reshuffled,
  singleTaskBase,
  type DomainInput,
  type LabelSource,
  type Ordering,
  type OrderingName,
} from './common.js';

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
  const { labels, numClasses, domains, p, rng } = prepare(kind, continualParams, source, domainInputs, params, seed);
  const { count, subset } = pickSubset(kind, p.samplesPerDomain, labels.length, rng);
  const segments = domainSegments(domains, (d) => (p.shufflePerDomain ? reshuffled(rng, subset, 'domain', d) : subset));
  return assemble(singleTaskBase(kind, seed, { ...p, samplesPerDomain: count }, numClasses, domains), segments);
}

export function continual(
  source: LabelSource,
  domains: readonly DomainInput[] | undefined,
  params: ContinualParams | undefined,
  seed: number,
): Ordering {
  return continualCore('continual', source, domains, params, seed);
}
