/**
 * What makes two runs the same run. A result file is reused (skipped by `ctta run`), merged, or
 * averaged into a table row with other seeds only when it was computed from the same scenario
 * (hash after any overrides), the same method with the same effective options (after dataset
 * defaults: lr and optimizer included), the same model checkpoint (hash of model.json, weights
 * and adapters) and companion checkpoints (ViDA's warm-up), the same result format and, for reuse,
 * the same seed. Everything else in the
 * header (backend, versions, start time) describes the run but does not define it.
 */
import { canonicalJson } from '../util/json-file.js';
import type { RunHeader } from './records.js';

export type IdentityFields = Pick<RunHeader, 'format' | 'scenario' | 'scenarioHash' | 'method' | 'methodOptions' | 'seed' | 'modelHash' | 'companions'>;

/**
 * The ways `found` differs from `wanted`, as short phrases ("option alpha: 1 here, 0.5 asked"),
 * empty when they are the same run. `ignoreSeed` compares two seeds of one table row.
 */
export function identityDifferences(found: IdentityFields, wanted: IdentityFields, options: { ignoreSeed?: boolean } = {}): string[] {
  const out: string[] = [];
  if (found.format !== wanted.format) out.push(`result format ${found.format} vs ${wanted.format}`);
  if (found.scenario !== wanted.scenario) out.push(`scenario ${found.scenario} vs ${wanted.scenario}`);
  else if (found.scenarioHash !== wanted.scenarioHash) out.push(`scenario ${found.scenario} has changed (hash ${short(found.scenarioHash)} vs ${short(wanted.scenarioHash)})`);
  if (found.method !== wanted.method) out.push(`method ${found.method} vs ${wanted.method}`);
  else out.push(...optionDifferences(found.methodOptions, wanted.methodOptions));
  if (found.modelHash !== wanted.modelHash) {
    out.push(found.modelHash === undefined || wanted.modelHash === undefined
      ? 'model: one of them was written by an older ctta that did not record the model hash'
      : `model checkpoint (hash ${short(found.modelHash)} vs ${short(wanted.modelHash)})`);
  }
  // Companions are known once a method has loaded them: compared when both sides know them (two
  // finished runs); a sweep checks a finished run's companions against the files (sweep.ts).
  if (found.companions && wanted.companions && canonicalJson(found.companions) !== canonicalJson(wanted.companions)) {
    out.push(`companion checkpoints ${canonicalJson(found.companions)} vs ${canonicalJson(wanted.companions)}`);
  }
  if (!options.ignoreSeed && found.seed !== wanted.seed) out.push(`seed ${found.seed} vs ${wanted.seed}`);
  return out;
}

function optionDifferences(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const show = (v: unknown) => (v === undefined ? 'unset' : canonicalJson(v));
  return keys.filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k])).map((k) => `option ${k}: ${show(a[k])} vs ${show(b[k])}`);
}

const short = (hash: string) => hash.slice(0, 12);
