/**
 * Orderings: which sample, under which domain and task, at each stream position. Every ordering
 * is a pure function of (labels, domains, params, seed[, evaluation labels]); `makeOrdering`
 * dispatches by the name a scenario file uses; `registerOrdering` adds more.
 */
import { Registry } from '../../util/registry.js';
import { classIncremental } from './class-incremental.js';
import type { BuiltinOrderingName, DomainInput, LabelSource, Ordering, OrderingFn, OrderingName } from './common.js';
import { continual } from './continual.js';
import { dirichlet } from './dirichlet.js';
import { domainIncremental } from './domain-incremental.js';
import { gradual } from './gradual.js';
import { imbalanced } from './imbalanced.js';
import { mixed } from './mixed.js';
import { resetEachShift } from './reset-each-shift.js';

export { CLEAN_CORRUPTION } from './common.js';
export type { BuiltinOrderingName, Domain, DomainInput, LabelSource, Ordering, OrderingFn, OrderingName, TaskInfo } from './common.js';
export { classIncremental, classIncrementalParams, type ClassIncrementalParams } from './class-incremental.js';
export { continual, continualParams, type ContinualParams } from './continual.js';
export { dirichlet, dirichletChunks, dirichletParams, type DirichletParams } from './dirichlet.js';
export { domainIncremental, domainIncrementalParams, type DomainIncrementalParams } from './domain-incremental.js';
export { gradual, gradualParams, gradualSeverities, type GradualParams } from './gradual.js';
export { imbalanced, imbalancedParams, type ImbalancedParams } from './imbalanced.js';
export { mixed, mixedParams, type MixedParams } from './mixed.js';
export { resetEachShift } from './reset-each-shift.js';
export { SeededRng } from './rng.js';

/** What `registerOrdering` takes. */
export interface OrderingDefinition {
  name: string;
  /**
   * Builds the ordering; it validates `params` itself (throw a CttaError naming the field) and
   * sets the result's `kind` to `name`. Must be a pure function of its arguments.
   */
  create: OrderingFn;
  description?: string;
}

const orderings = new Registry<OrderingDefinition>('ordering', 'ctta.orderings.registry');

/** Adds (or replaces) an ordering; scenario files can then name it in `ordering.name`. */
export function registerOrdering(definition: OrderingDefinition): void {
  orderings.register(definition);
}

const builtin: [BuiltinOrderingName, OrderingFn][] = [
  ['continual', continual as OrderingFn],
  ['reset_each_shift', resetEachShift as OrderingFn],
  ['gradual', gradual as OrderingFn],
  ['mixed', mixed as OrderingFn],
  ['dirichlet', dirichlet as OrderingFn],
  ['class_incremental', classIncremental as OrderingFn],
  ['domain_incremental', domainIncremental as OrderingFn],
  ['imbalanced', imbalanced as OrderingFn],
];
for (const [name, create] of builtin) registerOrdering({ name, create });

/** Names `makeOrdering` accepts, in a stable order (shipped ones first, then registration order). */
export function orderingNames(): OrderingName[] {
  return orderings.names();
}

export function isOrderingName(name: string): name is OrderingName {
  return orderings.has(name);
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
  return orderings.get(name).create(source, domains, params, seed, evalSource);
}
