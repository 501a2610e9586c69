/**
 * Scenario files: one JSON file describes one streaming protocol (dataset, model, domains,
 * ordering, batch size, seeds, default methods). Validated with zod; every error names the file,
 * the field and what was expected.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { z } from 'zod';
import { CttaError } from '../errors.js';
import { canonicalJson, jsonErrorLineColumn, jsonOrString, readJsonBytes } from '../util/json-file.js';
import { repoRoot } from '../util/paths.js';
import { checkScratchModel, isScratch, scratchModelSchema } from '../models/scenario-model.js';
import { corruptionNames, isCorruptionName } from './corruptions/index.js';
import { datasetNames, isDatasetName, isPrecorrupted, PRECORRUPTED_DATASETS } from './datasets/index.js';
import { CLEAN_CORRUPTION, isOrderingName, orderingNames } from './orderings/index.js';

/** Scenario files are a few KiB; anything far larger is not one (and would stall the parser). */
const MAX_SCENARIO_BYTES = 4 * 1024 ** 2;

/** The datasets ctta reads without registration; `registerDataset` adds more. */
export const SCENARIO_DATASETS = ['fashion-mnist', 'cifar10', 'cifar100', 'cifar10-c', 'cifar100-c', 'imagenet-c'] as const;
/** A shipped dataset's name or a registered one's (`string & {}` keeps editor completion). */
export type ScenarioDataset = (typeof SCENARIO_DATASETS)[number] | (string & {});

/** Datasets whose files already hold corrupted images (the engine does not corrupt them again). */
export const PRECORRUPTED: readonly ScenarioDataset[] = PRECORRUPTED_DATASETS;

/** Names a scenario's `dataset` accepts now: the registered (clean) datasets and the pre-corrupted files, sorted. */
export function scenarioDatasetNames(): string[] {
  return [...datasetNames(), ...PRECORRUPTED_DATASETS].sort();
}

// Checked when the file is parsed, so a dataset must be registered before its scenario is loaded.
const datasetName = z.string().refine((d) => isDatasetName(d) || isPrecorrupted(d), {
  error: (issue) => `unknown dataset "${String(issue.input)}"; expected one of ${scenarioDatasetNames().join(', ')} (or register it with registerDataset before loading the scenario)`,
});
const cleanDatasetName = z.string().refine(isDatasetName, {
  error: (issue) =>
    isPrecorrupted(String(issue.input))
      ? `"${String(issue.input)}" holds corrupted images; expected a dataset of clean images: ${datasetNames().join(', ')}`
      : `unknown dataset "${String(issue.input)}"; expected one of ${datasetNames().join(', ')}`,
});
const corruptionName = z.string().refine((c) => c === CLEAN_CORRUPTION || isCorruptionName(c), {
  error: (issue) => `unknown corruption "${String(issue.input)}"; expected one of ${[...corruptionNames(), CLEAN_CORRUPTION].join(', ')}`,
});
const severity = z.number({ error: 'expected a severity 1-5 (0 only for "none")' }).int('expected an integer severity').min(0, 'expected a severity 1-5').max(5, 'expected a severity 1-5');

/** A scenario's name is a folder of the results directory: one plain path segment. */
const SCENARIO_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

const scenarioSchema = z.strictObject({
  $schema: z.string().optional(),
  name: z.string().regex(SCENARIO_NAME, 'a name is letters, digits, ".", "_", "+" and "-", starting with a letter or digit (it names the results folder)').optional(),
  description: z.string().default(''),
  /** A registered dataset (corrupted on the fly by the engine) or pre-corrupted files (`PRECORRUPTED`). */
  dataset: datasetName,
  split: z.enum(['train', 'test']).default('test'),
  /**
   * Where clean source images come from (EATA's Fisher information): a dataset of clean images
   * with the stream's image shape. Default: the scenario's own dataset, uncorrupted, which
   * pre-corrupted files do not have.
   */
  clean: z.strictObject({ dataset: cleanDatasetName, split: z.enum(['train', 'test']).default('test') }).optional(),
  /**
   * Checkpoint directory or model.json. A relative path is looked up in the scenario's folder,
   * then the working directory, then the ctta package, and may not leave the folder it is
   * resolved in (no `..` escape). Or an untrained zoo architecture,
   * `{"arch": "resnet18_reduced", "init": "scratch"}`, seeded by the run (see models/scenario-model.ts).
   */
  model: z.union([z.string().min(1), scratchModelSchema]),
  /**
   * "all" (default): the model's head must predict every class of the dataset. "subset": the
   * model was trained on some classes only (its manifest's `classes`, e.g. the base model of a
   * class-incremental stream); runs record a warning that the other classes count as errors.
   */
  modelClasses: z.enum(['all', 'subset']).default('all'),
  /** Explicit domains; or give `corruptions` x `severities`. */
  domains: z.array(z.strictObject({ corruption: corruptionName, severity: severity.optional(), name: z.string().optional() })).min(1).optional(),
  corruptions: z.array(corruptionName).min(1).optional(),
  severities: z.array(severity).min(1).default([5]),
  ordering: z
    .strictObject({
      name: z.string().refine(isOrderingName, { error: (i) => `unknown ordering "${String(i.input)}"; expected one of ${orderingNames().join(', ')}` }),
      params: z.record(z.string(), z.unknown()).default({}),
    })
    .default({ name: 'continual', params: {} }),
  batchSize: z.number().int().positive().default(64),
  seeds: z.array(z.number().int().nonnegative()).min(1).default([0]),
  methods: z.array(z.string().min(1)).min(1).default(['source']),
  /**
   * Incremental orderings: hold out this fraction of the split (a seeded draw) as each task's
   * evaluation set; the stream uses the rest. Enables the accuracy matrix and forgetting.
   */
  heldOut: z
    .strictObject({
      fraction: z.number().gt(0).lt(1),
      /**
       * Also score the held-out sets of the tasks seen so far after every `every` stream batches
       * (average anytime accuracy). Off when absent; being optional without a default, it enters
       * the scenario hash only when set, so scenarios written before it keep their identity.
       */
      every: z.number().int('expected a whole number of batches').positive('expected a number of batches >= 1').optional(),
    })
    .optional(),
  /**
   * Run only the first `limit` batches of the stream (a quick check: `ctta run --limit N`).
   * Optional without a default, so it enters the scenario hash only when set: a limited run is
   * another run than the whole stream, and is never mistaken for it.
   */
  limit: z.number().int('expected a whole number of batches').positive('expected a number of batches >= 1').optional(),
  /**
   * Image files. ImageNet-C: shorter side resized to `resize`, centre crop `crop` (256/224).
   * `image-folder`: `root` (a class-per-folder tree; relative to the scenario's folder, then the
   * working directory; default --data-dir), every image resized to `size` (or [height, width]),
   * `channels` 1 (grey) or 3 (RGB, default).
   */
  image: z
    .strictObject({
      resize: z.number().int().positive().optional(),
      crop: z.number().int().positive().optional(),
      size: z.union([z.number().int().positive(), z.tuple([z.number().int().positive(), z.number().int().positive()])]).optional(),
      channels: z.union([z.literal(1), z.literal(3)], { error: 'expected 1 (grey) or 3 (RGB)' }).optional(),
      root: z.string().min(1).optional(),
    })
    .optional(),
});

export type ScenarioFile = z.output<typeof scenarioSchema>;

/** The top-level fields a scenario file may have (what `--scenario-set` sets, not `--set`). */
export const SCENARIO_FIELDS: readonly string[] = Object.keys(scenarioSchema.shape);

export interface DomainSpec {
  corruption: string;
  severity?: number;
  name?: string;
}

export interface Scenario extends Omit<ScenarioFile, 'domains' | 'corruptions' | 'severities' | 'name'> {
  name: string;
  /** Where it was read from (for messages). */
  file: string;
  domains: DomainSpec[];
  /** sha256 of the canonical JSON of everything that determines the stream and the model. */
  hash: string;
}

/** The shipped scenarios folder. */
export function scenariosDir(): string {
  return join(repoRoot(), 'scenarios');
}

/** Resolves `fmnist-c-continual`, `fmnist-c-continual.json` or a path to a scenario file. */
export function resolveScenarioPath(nameOrPath: string): string {
  const candidates = [nameOrPath, join(scenariosDir(), nameOrPath), join(scenariosDir(), `${nameOrPath}.json`)];
  const found = candidates.find((c) => existsSync(c) && c.endsWith('.json'));
  if (!found) {
    throw new CttaError(`scenario not found: ${nameOrPath}`, { fix: 'pass a scenario file path or a shipped name (`ctta list scenarios`)' });
  }
  return resolve(found);
}

/**
 * Loads a scenario, with `overrides` ("field=value", "a.b.c=value": the YACS habit) applied to
 * its JSON before validation, so they are checked like the file's own fields and enter the hash.
 */
export function loadScenario(nameOrPath: string, overrides: readonly string[] = []): Scenario {
  const file = resolveScenarioPath(nameOrPath);
  const bytes = readJsonBytes(file, {
    shown: file,
    maxBytes: MAX_SCENARIO_BYTES,
    tooLargeFix: 'pass a scenario file (a small JSON file)',
    notFileFix: 'pass a scenario file (a small JSON file)',
  });
  // Not UTF-8 is not refused here: invalid bytes become U+FFFD, as scenarios were always read.
  const text = new TextDecoder().decode(bytes);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // Located by our scanner: JSON.parse's message quotes the file, and not always with a position.
    const at = jsonErrorLineColumn(text);
    throw new CttaError(`${file}: not valid JSON${at ? ` at line ${at.line}, column ${at.column}` : ''}`, { fix: 'fix the JSON syntax' });
  }
  if (overrides.length === 0) return parseScenario(raw, file);
  applyOverrides(raw, overrides, file);
  return parseScenario(raw, `${file} (with --scenario-set ${overrides.join(' ')})`, file);
}

/** Sets each "a.b.c=value" in `raw` (values are JSON when they parse as JSON, else strings). */
function applyOverrides(raw: unknown, overrides: readonly string[], file: string): void {
  for (const entry of overrides) {
    const m = /^([A-Za-z$_][\w$]*(?:\.[A-Za-z_][\w]*)*)=(.*)$/s.exec(entry);
    if (!m) {
      throw new CttaError(`--scenario-set "${entry}" is not field=value`, { fix: 'e.g. --scenario-set batchSize=16 or --scenario-set ordering.params.samplesPerDomain=500' });
    }
    const path = m[1]!.split('.');
    const value = jsonOrString(m[2]!);
    let node = raw as Record<string, unknown>;
    for (const [k, key] of path.slice(0, -1).entries()) {
      const child = node[key] ?? (node[key] = {});
      if (typeof child !== 'object' || child === null || Array.isArray(child)) {
        throw new CttaError(`--scenario-set "${entry}": ${path.slice(0, k + 1).join('.')} in ${file} is not an object`, { fix: 'set the field itself, e.g. --scenario-set ' + `${path.slice(0, k + 1).join('.')}=...` });
      }
      node = child as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = value;
  }
}

/**
 * Validates a scenario object (e.g. built in code). `label` names it in messages; `file` is
 * where it was read from (names the scenario and resolves its model), `label` by default.
 */
export function parseScenario(raw: unknown, label = '(scenario)', file = label): Scenario {
  const parsed = scenarioSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : '(top level)';
    const what = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
    throw new CttaError(`${label}: ${field}: ${what}`, { fix: 'see "Scenario files" in the README for the fields and their values' });
  }
  const s = parsed.data;
  if (s.domains && s.corruptions) {
    throw new CttaError(`${label}: give either "domains" or "corruptions" (+ "severities"), not both`, { fix: 'remove one of them' });
  }
  if (!s.domains && !s.corruptions) {
    throw new CttaError(`${label}: no domains: add "corruptions" (+ "severities") or "domains"`, { fix: 'e.g. "corruptions": ["gaussian_noise"], "severities": [5]' });
  }
  const gradual = s.ordering.name === 'gradual';
  const domains: DomainSpec[] =
    s.domains ??
    s.corruptions!.flatMap((corruption) =>
      // gradual sweeps severities itself; the others take every corruption x severity pair.
      gradual ? [{ corruption }] : s.severities.map((severity) => ({ corruption, severity: corruption === CLEAN_CORRUPTION ? 0 : severity })),
    );
  domains.forEach((d, i) => {
    if (d.corruption !== CLEAN_CORRUPTION && d.severity === 0) {
      throw new CttaError(`${label}: domains[${i}].severity: 0 is only for "none" (clean)`, { fix: 'use a severity 1-5' });
    }
  });
  const { domains: _d, corruptions: _c, severities: _s, name: given, $schema: _schema, ...rest } = s;
  // Scenarios built in code (no file) are named "scenario" unless they say otherwise.
  const name = given ?? (file === '(scenario)' ? 'scenario' : basename(file, '.json'));
  if (!SCENARIO_NAME.test(name)) {
    throw new CttaError(`${label}: the file name "${name}" cannot name a results folder`, { fix: 'add a "name" field of letters, digits, ".", "_", "+" and "-"' });
  }
  if (isScratch(s.model)) checkScratchModel(s.model, label);
  const scenario = { ...rest, name, file, domains };
  // A field added later with a default enters the hash only when set otherwise, so results of
  // scenarios written before it existed keep their identity.
  const addedLater = { modelClasses: scenario.modelClasses === 'all' ? undefined : scenario.modelClasses };
  const hash = createHash('sha256').update(canonicalJson({ ...scenario, ...addedLater, file: undefined, methods: undefined, seeds: undefined, description: undefined })).digest('hex');
  return { ...scenario, hash };
}

/**
 * Resolves a scenario's model path: absolute as given; relative in the scenario's folder, then the
 * working directory, then the ctta package (the shipped `models/...`, also by bare name). A relative path may not
 * climb out of the folder it is resolved in, so a scenario cannot point ctta at arbitrary files.
 */
export function resolveModelPath(model: string, scenarioFile?: string): string {
  if (isAbsolute(model)) return resolve(model);
  const normal = normalize(model);
  if (normal === '..' || normal.startsWith(`..${sep}`) || normal.split(sep).includes('..')) {
    throw new CttaError(`${scenarioFile ?? 'scenario'}: model "${model}" leaves the folder it is resolved in`, {
      fix: 'give the model path inside the scenario\'s folder, the working directory or the ctta package, or an absolute path',
    });
  }
  const bases = [...(scenarioFile && isAbsolute(scenarioFile) ? [dirname(scenarioFile)] : []), process.cwd(), repoRoot()];
  // A shipped model may also be named alone ("fmnist-resnet8"), as loadModel accepts it.
  const candidates = [...bases.map((b) => join(b, normal)), join(repoRoot(), 'models', normal)];
  const found = candidates.find((p) => existsSync(p));
  return found ?? resolve(normal);
}

