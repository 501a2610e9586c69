/**
 * mixed: all domains at once. Every domain contributes the same `samplesPerDomain` images (as in
 * continual), and the (domain, image) positions of all domains are shuffled together, so each
 * batch mixes corruptions: the "mixed domain" setting of e.g. SAR (Niu et al., ICLR 2023) and
 * RoTTA's robustness studies. Each (domain, image) pair appears exactly once.
 */
import { z } from 'zod';

import {
  allClassesTask,
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
} from './common.js';
import { SeededRng } from './rng.js';

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
  checkSeed(kind, seed);
  const { labels, numClasses } = resolveLabels(kind, source);
  const domains = resolveDomains(kind, domainInputs);
  const p = parseParams(kind, mixedParams, params);
  const count = resolveCount(kind, 'samplesPerDomain', p.samplesPerDomain, labels.length);
  const rng = new SeededRng(seed);
  const subset = pickSubset(rng.fork('subset'), labels.length, count);

  const length = domains.length * count;
  // Position code q = d * count + i stands for (domain d, i-th image of the subset).
  const codes = rng.fork('mix').permutation(length);
  const order = new Int32Array(length);
  const domain = new Int32Array(length);
  const severity = new Int8Array(length);
  for (let pos = 0; pos < length; pos++) {
    const q = codes[pos]!;
    const d = Math.floor(q / count);
    order[pos] = subset[q - d * count]!;
    domain[pos] = d;
    severity[pos] = domains[d]!.severity;
  }
  return {
    kind,
    seed,
    params: { ...p, samplesPerDomain: count },
    numClasses,
    length,
    order,
    domain,
    severity,
    task: new Int32Array(length),
    domains,
    tasks: [allClassesTask(numClasses, null)],
  };
}
