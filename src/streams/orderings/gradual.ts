/**
 * gradual: CoTTA's gradually changing corruptions (Wang et al., CVPR 2022, "gradual" setting,
 * `cifar10c_gradual.py` in their code). The severity moves one level at a time and the
 * corruption type changes only at the lowest severity:
 *
 *   first corruption: 5 4 3 2 1      (start at 5 to keep the large source -> target gap)
 *   each later one:   1 2 3 4 5 4 3 2 1
 *
 * `start: "full"` gives the first corruption the full 1..5..1 sweep as well. Each
 * (corruption, severity) visit is a segment of `samplesPerDomain` images (CoTTA: 10k); the
 * domains list holds each (corruption, severity) pair once, so the two visits of a severity
 * within one corruption share a domain id and are scored together.
 */
import { z } from 'zod';

import { CttaError } from '../../errors.js';
import {
  CLEAN_CORRUPTION,
  assemble,
  pickSubset,
  positiveInt,
  prepare,
  reshuffled,
  resolveDomains,
  singleTaskBase,
  type Domain,
  type DomainInput,
  type LabelSource,
  type Ordering,
  type Segment,
} from './common.js';

export const gradualParams = z
  .object({
    /** Images per (corruption, severity) segment (default: the whole split). */
    samplesPerDomain: positiveInt.optional(),
    /** Re-shuffle the images for every segment (default false: same order in every segment). */
    shufflePerDomain: z.boolean().default(false),
    /** "descending": the first corruption runs 5..1 (CoTTA); "full": it runs 1..5..1 too. */
    start: z.enum(['descending', 'full']).default('descending'),
  })
  .strict();

export type GradualParams = z.input<typeof gradualParams>;

const UP_DOWN = [1, 2, 3, 4, 5, 4, 3, 2, 1];
const DOWN = [5, 4, 3, 2, 1];

/** The severity sequence of corruption number `i` (0-based). */
export function gradualSeverities(i: number, start: 'descending' | 'full'): number[] {
  return i === 0 && start === 'descending' ? DOWN : UP_DOWN;
}

/**
 * The corruption types to sweep, as domains with a placeholder severity: gradual needs a list,
 * and chooses the severities itself.
 */
function corruptionTypes(ordering: string, corruptions: readonly DomainInput[] | undefined): Domain[] {
  if (corruptions === undefined) {
    throw new CttaError(`ordering "${ordering}": domains must list the corruptions to sweep`, {
      fix: 'e.g. domains: [{"corruption": "gaussian_noise"}, {"corruption": "shot_noise"}]',
    });
  }
  corruptions.forEach((c, i) => {
    if (c && typeof c === 'object' && c.severity !== undefined) {
      throw new CttaError(
        `ordering "${ordering}": domains[${i}].severity is set (${String(c.severity)}) but gradual chooses the severities itself`,
        { fix: 'list corruptions only, e.g. {"corruption": "fog"}' },
      );
    }
    if (c && typeof c === 'object' && c.corruption === CLEAN_CORRUPTION) {
      throw new CttaError(`ordering "${ordering}": domains[${i}].corruption is "${CLEAN_CORRUPTION}", which has no severities`);
    }
  });
  // Validates names and duplicates; the severity here is a placeholder.
  return resolveDomains(ordering, corruptions.map((c) => ({ ...c, severity: 5, name: c.name ?? c.corruption })));
}

export function gradual(
  source: LabelSource,
  corruptions: readonly DomainInput[] | undefined,
  params: GradualParams | undefined,
  seed: number,
): Ordering {
  const kind = 'gradual';
  const { labels, numClasses, domains: types, p, rng } = prepare(
    kind,
    gradualParams,
    source,
    corruptions,
    params,
    seed,
    corruptionTypes,
  );
  const { count, subset } = pickSubset(kind, p.samplesPerDomain, labels.length, rng);

  const domains: Domain[] = [];
  const domainId = new Map<string, number>();
  const segments: Segment[] = [];
  types.forEach((type, i) => {
    for (const severity of gradualSeverities(i, p.start)) {
      const name = `${type.name}-${severity}`;
      let d = domainId.get(name);
      if (d === undefined) {
        d = domains.length;
        domains.push({ name, corruption: type.corruption, severity });
        domainId.set(name, d);
      }
      const s = segments.length;
      segments.push({
        indices: p.shufflePerDomain ? reshuffled(rng, subset, 'segment', s) : subset,
        domain: d,
        task: 0,
      });
    }
  });
  return assemble(singleTaskBase(kind, seed, { ...p, samplesPerDomain: count }, numClasses, domains), segments);
}
