/**
 * mixed: all domains at once. Every domain contributes the same `samplesPerDomain` images (as in
 * continual), and the (domain, image) positions of all domains are shuffled together, so each
 * batch mixes corruptions: the "mixed domain" setting of e.g. SAR (Niu et al., ICLR 2023) and
 * RoTTA's robustness studies. Each (domain, image) pair appears exactly once.
 */
import { z } from 'zod';

import {
  pickSubset,
  positiveInt,
  prepare,
  singleTaskBase,
  withPositions,
  type DomainInput,
  type LabelSource,
  type Ordering,
} from './common.js';

export const mixedParams = z
  .object({
    /** Images per domain (default: the whole split). */
    samplesPerDomain: positiveInt.optional(),
  })
  .strict();

export type MixedParams = z.input<typeof mixedParams>;

export function mixed(
  source: LabelSource,
  domainInputs: readonly DomainInput[] | undefined,
  params: MixedParams | undefined,
  seed: number,
): Ordering {
  const kind = 'mixed';
  const { labels, numClasses, domains, p, rng } = prepare(kind, mixedParams, source, domainInputs, params, seed);
  const { count, subset } = pickSubset(kind, p.samplesPerDomain, labels.length, rng);

  const length = domains.length * count;
  // Position code q = d * count + i stands for (domain d, i-th image of the subset).
  const codes = rng.fork('mix').permutation(length);
  const order = new Int32Array(length);
  const domain = new Int32Array(length);
  for (let pos = 0; pos < length; pos++) {
    const q = codes[pos]!;
    const d = Math.floor(q / count);
    order[pos] = subset[q - d * count]!;
    domain[pos] = d;
  }
  return withPositions(singleTaskBase(kind, seed, { ...p, samplesPerDomain: count }, numClasses, domains), order, domain);
}
