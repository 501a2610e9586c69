/**
 * Orderings: which sample, under which domain and task, at each stream position. Every ordering
 * is a pure function of (labels, domains, params, seed[, evaluation labels]); `makeOrdering`
 * dispatches by the name a scenario file uses.
 */
import { CttaError } from '../../errors.js';
import { classIncremental } from './class-incremental.js';
import type { DomainInput, LabelSource, Ordering, OrderingFn, OrderingName } from './common.js';
import { continual } from './continual.js';
import { dirichlet } from './dirichlet.js';
import { domainIncremental } from './domain-incremental.js';
import { gradual } from './gradual.js';
import { imbalanced } from './imbalanced.js';
import { mixed } from './mixed.js';
import { resetEachShift } from './reset-each-shift.js';

export { CLEAN_CORRUPTION } from './common.js';
export type { Domain, DomainInput, LabelSource, Ordering, OrderingFn, OrderingName, TaskInfo } from './common.js';
export { classIncremental, classIncrementalParams, type ClassIncrementalParams } from './class-incremental.js';
export { continual, continualParams, type ContinualParams } from './continual.js';
export { dirichlet, dirichletChunks, dirichletParams, type DirichletParams } from './dirichlet.js';
export { domainIncremental, domainIncrementalParams, type DomainIncrementalParams } from './domain-incremental.js';
export { gradual, gradualParams, gradualSeverities, type GradualParams } from './gradual.js';
export { imbalanced, imbalancedParams, type ImbalancedParams } from './imbalanced.js';
export { mixed, mixedParams, type MixedParams } from './mixed.js';
export { resetEachShift } from './reset-each-shift.js';
export { SeededRng } from './rng.js';

const ORDERINGS: Record<OrderingName, OrderingFn> = {
  continual: continual as OrderingFn,
  reset_each_shift: resetEachShift as OrderingFn,
  gradual: gradual as OrderingFn,
  mixed: mixed as OrderingFn,
  dirichlet: dirichlet as OrderingFn,
  class_incremental: classIncremental as OrderingFn,
  domain_incremental: domainIncremental as OrderingFn,
  imbalanced: imbalanced as OrderingFn,
};

/** Names `makeOrdering` accepts, in a stable order. */
export function orderingNames(): OrderingName[] {
  return Object.keys(ORDERINGS) as OrderingName[];
}

export function isOrderingName(name: string): name is OrderingName {
  return Object.prototype.hasOwnProperty.call(ORDERINGS, name);
}

/**
 * Build the ordering `name`. `params` is validated here (unknown keys and bad values are
 * CttaErrors naming the field), so it can come straight from a scenario file.
 * `evalSource` (the held-out split's labels) is used by the incremental orderings only.
 */
export function makeOrdering(
  name: string,
  source: LabelSource,
  domains: readonly DomainInput[] | undefined,
  params: unknown,
  seed: number,
  evalSource?: LabelSource,
): Ordering {
  if (!isOrderingName(name)) {
    throw new CttaError(`unknown ordering "${name}"`, { fix: `use one of: ${orderingNames().join(', ')}` });
  }
  return ORDERINGS[name](source, domains, params, seed, evalSource);
}
