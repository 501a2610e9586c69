/**
 * reset_each_shift: the continual order, but the runner resets the model to its source weights
 * at every domain boundary. This is the "oracle that knows when the domain changes" baseline of
 * the CTTA papers (e.g. TENT run per corruption in the CoTTA tables).
 */
import { continualCore, type ContinualParams } from './continual.js';
import type { DomainInput, LabelSource, Ordering } from './common.js';

export function resetEachShift(
  source: LabelSource,
  domains: readonly DomainInput[] | undefined,
  params: ContinualParams | undefined,
  seed: number,
): Ordering {
  const ordering = continualCore('reset_each_shift', source, domains, params, seed);
  const resetAt: number[] = [];
  for (let p = 1; p < ordering.length; p++) {
    if (ordering.domain[p] !== ordering.domain[p - 1]) resetAt.push(p);
  }
  return { ...ordering, resetAt };
}
