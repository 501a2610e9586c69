/**
 * Shared vocabulary of the orderings: what goes in (labels, domains, params, seed), what comes out
 * (an `Ordering`: one entry per stream position), the validation every ordering applies, and the
 * building blocks they share (the seeded image subset, per-domain segments, assembly).
 *
 * An ordering never touches pixels: it says which sample index is shown at each position and
 * under which domain (corruption, severity) and task. The stream builder applies the corruption.
 */
import { z } from 'zod';

import { CttaError } from '../../errors.js';
import type { Label } from '../../util/rng.js';
import { SeededRng } from './rng.js';

/** The orderings ctta ships. */
export type BuiltinOrderingName =
  | 'continual'
  | 'reset_each_shift'
  | 'gradual'
  | 'mixed'
  | 'dirichlet'
  | 'class_incremental'
  | 'domain_incremental'
  | 'imbalanced';

/** A shipped ordering's name or one added with `registerOrdering` (`string & {}` keeps editor completion). */
export type OrderingName = BuiltinOrderingName | (string & {});

/** The labels of the split being ordered: the array itself or anything holding it (an ImageDataset). */
export type LabelSource = Int32Array | { readonly labels: Int32Array; readonly classNames?: readonly string[] };

/** One domain as a scenario file writes it. `severity` defaults to 5 (0 for the clean domain). */
export interface DomainInput {
  corruption: string;
  severity?: number;
  /** Column name in tables; default `<corruption>-<severity>`, or `clean`. */
  name?: string;
}

/** A domain = (corruption, severity). */
export interface Domain {
  name: string;
  corruption: string;
  /** 1..5, or 0 for the clean domain. */
  severity: number;
}

/** A task of an incremental ordering (or the single task of the others). */
export interface TaskInfo {
  id: number;
  name: string;
  /** Classes whose samples the task streams, in class-order. */
  classes: number[];
  /** The domain the task's samples are shown under; null when it varies within the task. */
  domain: number | null;
  /** Indices into the evaluation split held out for this task (incremental orderings, when given one). */
  evalIndices?: Int32Array;
}

export interface Ordering {
  kind: OrderingName;
  seed: number;
  /** The parameters after defaults were filled in: record them with the results. */
  params: Record<string, unknown>;
  numClasses: number;
  /** Stream length. */
  length: number;
  /** Sample index (into the labels / dataset) per stream position. */
  order: Int32Array;
  /** Index into `domains` per position. */
  domain: Int32Array;
  /** Severity per position (a copy of `domains[domain[p]].severity`, for cheap lookups). */
  severity: Int8Array;
  /** Index into `tasks` per position; 0 everywhere for the non-incremental orderings. */
  task: Int32Array;
  /**
   * Positions before which the runner resets the model to its source state (reset_each_shift).
   * Position 0 is never listed: the model starts fresh anyway.
   */
  resetAt?: number[];
  domains: Domain[];
  tasks: TaskInfo[];
}

/** The corruption name of the uncorrupted domain. */
export const CLEAN_CORRUPTION = 'none';

const MAX_SEVERITY = 5;

/** Signature every ordering shares, so the registry can dispatch by name. */
export type OrderingFn = (
  source: LabelSource,
  domains: readonly DomainInput[] | undefined,
  params: unknown,
  seed: number,
  evalSource?: LabelSource,
) => Ordering;

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  try {
    const s = JSON.stringify(value);
    return s.length > 60 ? s.slice(0, 57) + '...' : s;
  } catch {
    return String(value);
  }
}

function getPath(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

/** Validate `params` against `schema`; the first problem becomes a CttaError naming the field. */
export function parseParams<S extends z.ZodObject>(ordering: string, schema: S, params: unknown): z.output<S> {
  const result = schema.safeParse(params ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const known = Object.keys(schema.shape).join(', ');
  if (issue.code === 'unrecognized_keys') {
    throw new CttaError(`ordering "${ordering}": unknown parameter params.${issue.keys.join(', params.')}`, {
      fix: `parameters of "${ordering}" are: ${known}`,
    });
  }
  const field = issue.path.length === 0 ? 'params' : `params.${issue.path.map(String).join('.')}`;
  throw new CttaError(
    `ordering "${ordering}": ${field}: ${issue.message} (got ${describe(getPath(params, issue.path))})`,
    { fix: `parameters of "${ordering}" are: ${known}` },
  );
}

export function checkSeed(ordering: string, seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new CttaError(`ordering "${ordering}": seed must be a non-negative integer (got ${describe(seed)})`, {
      fix: 'pass an integer seed such as 0, 1, 2',
    });
  }
}

/** Labels plus the class count: `classNames.length` when known, else max label + 1. */
export function resolveLabels(
  ordering: string,
  source: LabelSource,
  what = 'labels',
): { labels: Int32Array; numClasses: number } {
  const labels = source instanceof Int32Array ? source : source?.labels;
  if (!(labels instanceof Int32Array)) {
    throw new CttaError(`ordering "${ordering}": ${what} must be an Int32Array (or a dataset with .labels)`);
  }
  if (labels.length === 0) throw new CttaError(`ordering "${ordering}": ${what} are empty (0 samples)`);
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (y < 0) throw new CttaError(`ordering "${ordering}": ${what}[${i}] = ${y} is negative; labels must be 0..C-1`);
    if (y > max) max = y;
  }
  const names = source instanceof Int32Array ? undefined : source.classNames;
  const numClasses = names && names.length > 0 ? names.length : max + 1;
  if (max >= numClasses) {
    throw new CttaError(
      `ordering "${ordering}": ${what} hold class ${max} but the dataset names only ${numClasses} classes`,
    );
  }
  return { labels, numClasses };
}

/** Validate and complete the domain list; an absent list means one clean domain. */
export function resolveDomains(ordering: string, inputs: readonly DomainInput[] | undefined): Domain[] {
  if (inputs === undefined) return [{ name: 'clean', corruption: CLEAN_CORRUPTION, severity: 0 }];
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw new CttaError(`ordering "${ordering}": domains must be a non-empty list of {corruption, severity}`, {
      fix: 'e.g. domains: [{"corruption": "gaussian_noise", "severity": 5}]',
    });
  }
  const seen = new Map<string, number>();
  return inputs.map((input, i) => {
    const field = `domains[${i}]`;
    if (input === null || typeof input !== 'object') {
      throw new CttaError(`ordering "${ordering}": ${field} must be an object {corruption, severity} (got ${describe(input)})`);
    }
    const { corruption, severity, name } = input;
    if (typeof corruption !== 'string' || corruption.trim() === '') {
      throw new CttaError(`ordering "${ordering}": ${field}.corruption must be a non-empty string (got ${describe(corruption)})`, {
        fix: `use a corruption name such as "gaussian_noise", or "${CLEAN_CORRUPTION}" for clean data`,
      });
    }
    const clean = corruption === CLEAN_CORRUPTION;
    const sev = severity ?? (clean ? 0 : MAX_SEVERITY);
    if (!Number.isInteger(sev) || sev < 0 || sev > MAX_SEVERITY || (clean ? sev !== 0 : sev === 0)) {
      throw new CttaError(
        `ordering "${ordering}": ${field}.severity must be an integer 1..${MAX_SEVERITY}` +
          ` (0 only with corruption "${CLEAN_CORRUPTION}") (got ${describe(severity)})`,
      );
    }
    if (name !== undefined && (typeof name !== 'string' || name === '')) {
      throw new CttaError(`ordering "${ordering}": ${field}.name must be a non-empty string (got ${describe(name)})`);
    }
    const finalName = name ?? (clean ? 'clean' : `${corruption}-${sev}`);
    const previous = seen.get(finalName);
    if (previous !== undefined) {
      throw new CttaError(`ordering "${ordering}": ${field} repeats domain "${finalName}" of domains[${previous}]`, {
        fix: 'list each (corruption, severity) once, or give the repeat a distinct name',
      });
    }
    seen.set(finalName, i);
    return { name: finalName, corruption, severity: sev };
  });
}

/** What every ordering starts from: its validated inputs and its root random stream. */
export interface Prepared<P> {
  labels: Int32Array;
  numClasses: number;
  domains: Domain[];
  p: P;
  rng: SeededRng;
}

/** Builds the domain list from a scenario's domains; `resolveDomains` unless an ordering has rules of its own. */
export type DomainResolver = (ordering: string, inputs: readonly DomainInput[] | undefined) => Domain[];

/**
 * The checks every ordering starts with, always in the same order (seed, labels, domains,
 * params), then the root stream of `seed`.
 */
export function prepare<S extends z.ZodObject>(
  ordering: OrderingName,
  schema: S,
  source: LabelSource,
  domainInputs: readonly DomainInput[] | undefined,
  params: unknown,
  seed: number,
  resolve: DomainResolver = resolveDomains,
): Prepared<z.output<S>> {
  checkSeed(ordering, seed);
  const { labels, numClasses } = resolveLabels(ordering, source);
  const domains = resolve(ordering, domainInputs);
  const p = parseParams(ordering, schema, params);
  return { labels, numClasses, domains, p, rng: new SeededRng(seed) };
}

/** Resolve `samplesPerDomain` (default: all n samples) and check it fits. */
export function resolveCount(ordering: string, field: string, requested: number | undefined, available: number): number {
  if (requested === undefined) return available;
  if (requested > available) {
    throw new CttaError(
      `ordering "${ordering}": params.${field} = ${requested} but only ${available} samples are available`,
      { fix: `use params.${field} <= ${available}, or omit it to use all samples` },
    );
  }
  return requested;
}

/**
 * The seed's permutation of the n samples, from the stream "subset": every ordering takes its
 * images from it, so a seed picks the same images whichever ordering is chosen.
 */
export function subsetPermutation(rng: SeededRng, n: number): Int32Array {
  return rng.fork('subset').permutation(n);
}

/** The `samplesPerDomain` images (default: all n) every domain shows: the head of the subset permutation. */
export function pickSubset(
  ordering: string,
  samplesPerDomain: number | undefined,
  n: number,
  rng: SeededRng,
): { count: number; subset: Int32Array } {
  const count = resolveCount(ordering, 'samplesPerDomain', samplesPerDomain, n);
  return { count, subset: subsetPermutation(rng, n).slice(0, count) };
}

/** A copy of `indices` in the seeded order of the stream `labels` (e.g. "domain", 3). */
export function reshuffled(rng: SeededRng, indices: Int32Array, ...labels: Label[]): Int32Array {
  return rng.fork(...labels).shuffle(indices.slice());
}

/** `indices` ascending, or, when there are more than `limit`, a seeded subset of `limit` of them, ascending. */
export function sortedSample(indices: Int32Array, limit: number | undefined, rng: SeededRng): Int32Array {
  const chosen = limit !== undefined && limit < indices.length ? rng.shuffle(indices.slice()).slice(0, limit) : indices.slice();
  return chosen.sort();
}

/** Check `params.classOrder`: classes of the dataset, none twice, and (when `complete`) all of them. */
export function checkClassOrder(ordering: string, order: readonly number[], numClasses: number, complete: boolean): void {
  const seen = new Set<number>();
  order.forEach((c, i) => {
    if (c >= numClasses) {
      throw new CttaError(
        `ordering "${ordering}": params.classOrder[${i}] = ${c} is not a class of the dataset (0..${numClasses - 1})`,
      );
    }
    if (seen.has(c)) throw new CttaError(`ordering "${ordering}": params.classOrder[${i}] repeats class ${c}`);
    seen.add(c);
  });
  if (complete && seen.size !== numClasses) {
    throw new CttaError(`ordering "${ordering}": params.classOrder lists ${seen.size} classes; it must rank all ${numClasses}`);
  }
}

/** 0, 1, ..., n - 1. */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** The arrays one after another, in a new array. */
export function concat(parts: readonly Int32Array[]): Int32Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Int32Array(length);
  let o = 0;
  for (const part of parts) {
    out.set(part, o);
    o += part.length;
  }
  return out;
}

/** Sample indices of each class, in the order they appear in `indices` (or 0..n-1). */
export function indicesByClass(labels: Int32Array, numClasses: number, indices?: Int32Array): Int32Array[] {
  const counts = new Int32Array(numClasses);
  const n = indices ? indices.length : labels.length;
  for (let i = 0; i < n; i++) counts[labels[indices ? indices[i]! : i]!]!++;
  const out = Array.from(counts, (c) => new Int32Array(c));
  const fill = new Int32Array(numClasses);
  for (let i = 0; i < n; i++) {
    const idx = indices ? indices[i]! : i;
    const y = labels[idx]!;
    out[y]![fill[y]!++] = idx;
  }
  return out;
}

/** One contiguous stretch of the stream: these sample indices, under one domain and task. */
export interface Segment {
  indices: Int32Array;
  domain: number;
  task: number;
}

/** One segment per domain, in domain order; in task 0 unless `taskOf` says otherwise. */
export function domainSegments(
  domains: readonly Domain[],
  indicesOf: (domain: number) => Int32Array,
  taskOf: (domain: number) => number = () => 0,
): Segment[] {
  return domains.map((_, d) => ({ indices: indicesOf(d), domain: d, task: taskOf(d) }));
}

/** An Ordering without its per-position arrays. */
export type OrderingBase = Omit<Ordering, 'length' | 'order' | 'domain' | 'severity' | 'task'>;

/** The base of a non-incremental ordering: one task of all classes, under a varying domain. */
export function singleTaskBase(
  kind: OrderingName,
  seed: number,
  params: Record<string, unknown>,
  numClasses: number,
  domains: Domain[],
): OrderingBase {
  return { kind, seed, params, numClasses, domains, tasks: [{ id: 0, name: 'all', classes: range(numClasses), domain: null }] };
}

/** Complete `base` with its per-position arrays; severities are looked up, tasks default to 0. */
export function withPositions(
  base: OrderingBase,
  order: Int32Array,
  domain: Int32Array,
  task = new Int32Array(order.length),
): Ordering {
  const length = order.length;
  const severity = new Int8Array(length);
  for (let p = 0; p < length; p++) severity[p] = base.domains[domain[p]!]!.severity;
  return { ...base, length, order, domain, severity, task };
}

/** Concatenate segments into the per-position arrays of an Ordering. */
export function assemble(base: OrderingBase, segments: readonly Segment[]): Ordering {
  const order = concat(segments.map((s) => s.indices));
  const domain = new Int32Array(order.length);
  const task = new Int32Array(order.length);
  let p = 0;
  for (const s of segments) {
    domain.fill(s.domain, p, p + s.indices.length);
    task.fill(s.task, p, p + s.indices.length);
    p += s.indices.length;
  }
  return withPositions(base, order, domain, task);
}

/** Zod pieces the orderings share. */
export const positiveInt = z.number().int().min(1);
