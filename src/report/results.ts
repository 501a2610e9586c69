/**
 * Reading result files back: `<dir>/<scenario>/<method>/seed-<k>.jsonl`, one per finished run
 * (format in ../eval/records.ts). The runner writes `*.partial` and renames it after the summary,
 * so a `seed-<k>.jsonl` without a summary is damaged, not in progress: we say so, naming the file
 * and line, instead of averaging a half run into a table.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';
import { CttaError } from '../errors.js';
import {
  batchRecordSchema,
  describeIssue,
  RESULTS_FORMAT,
  runHeaderSchema,
  runSummarySchema,
  type BatchRecord,
  type RunHeader,
  type RunSummary,
} from '../eval/records.js';
import { identityDifferences } from '../eval/run-identity.js';

export { RESULTS_FORMAT };

/** A finished run as read back from its file (the runner's in-memory result is eval/runner's RunOutcome). */
export interface FinishedRun {
  /** Path of the result file. */
  file: string;
  header: RunHeader;
  batches: BatchRecord[];
  summary: RunSummary;
}

/** A run's name in tables and plots: its variant label, else its method. */
export function runName(header: Pick<RunHeader, 'method' | 'label'>): string {
  return header.label ?? header.method;
}

/** A finished run's file, found by walking a results directory (nothing parsed yet). */
export interface RunFile {
  file: string;
  /** `<scenario>/<method>/seed-<k>.jsonl`, with forward slashes: the run's identity in a sweep. */
  relative: string;
  scenario: string;
  method: string;
  seed: number;
}

const FINISHED_FILE = /^seed-(\d+)\.jsonl$/;
const REDO = 'delete it and re-run: ctta run skips finished runs';

/** Code-unit order: the same on every machine and locale (tables must be byte-identical). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Every finished run under `dir`, sorted by (scenario, method, seed). Unfinished `*.partial` files
 * and anything not shaped like `<scenario>/<method>/seed-<k>.jsonl` are skipped.
 */
export async function readResults(dir: string): Promise<FinishedRun[]> {
  const files = await listRunFiles(dir);
  const runs: FinishedRun[] = [];
  for (const f of files) runs.push(await readRunFile(f.file));
  runs.sort(compareRuns);
  // Two files claiming the same run (e.g. a results folder copied into another) would count a
  // seed twice in every mean.
  for (let k = 1; k < runs.length; k++) {
    const a = runs[k - 1]!.header;
    const b = runs[k]!.header;
    if (a.scenario === b.scenario && runName(a) === runName(b) && a.seed === b.seed) {
      throw new CttaError(`${runs[k - 1]!.file} and ${runs[k]!.file} are both ${a.scenario} / ${runName(a)} / seed ${a.seed}`, {
        fix: 'keep one of them (move the other out of the results directory)',
      });
    }
  }
  checkRowIdentity(runs);
  return runs;
}

/**
 * The seeds of one table row (scenario, run name) must be the same run but for the seed: same
 * scenario hash, method, effective options and model. Otherwise a mean would mix two settings.
 * `runs` sorted as readResults sorts them.
 */
export function checkRowIdentity(runs: readonly Pick<FinishedRun, 'file' | 'header'>[]): void {
  const first = new Map<string, Pick<FinishedRun, 'file' | 'header'>>();
  for (const r of runs) {
    const key = `${r.header.scenario}\0${runName(r.header)}`;
    const ref = first.get(key);
    if (!ref) {
      first.set(key, r);
      continue;
    }
    const diff = identityDifferences(ref.header, r.header, { ignoreSeed: true });
    if (diff.length > 0) {
      throw new CttaError(`${ref.file} and ${r.file} would be one table row (${r.header.scenario} / ${runName(r.header)}) but are different runs: ${diff.join('; ')}`, {
        fix: 'move one of them out of the folder, or re-run it with the settings of the other',
      });
    }
  }
}

function compareRuns(a: FinishedRun, b: FinishedRun): number {
  return (
    compareStrings(a.header.scenario, b.header.scenario) ||
    compareStrings(runName(a.header), runName(b.header)) ||
    a.header.seed - b.header.seed ||
    compareStrings(a.file, b.file)
  );
}

/** The finished run files under a results directory (`<dir>/<scenario>/<method>/seed-<k>.jsonl`), sorted. */
export async function listRunFiles(dir: string): Promise<RunFile[]> {
  let info;
  try {
    info = await stat(dir);
  } catch (err) {
    throw dirError(dir, err);
  }
  if (!info.isDirectory()) {
    throw new CttaError(`results directory ${dir} is a file, not a directory`, { fix: 'pass the --out directory of `ctta run`' });
  }
  const out: RunFile[] = [];
  for (const scenario of await subdirs(dir)) {
    for (const method of await subdirs(join(dir, scenario))) {
      for (const name of await entries(join(dir, scenario, method))) {
        const m = FINISHED_FILE.exec(name);
        if (!m) continue;
        out.push({ file: join(dir, scenario, method, name), relative: `${scenario}/${method}/${name}`, scenario, method, seed: Number(m[1]) });
      }
    }
  }
  return out.sort((a, b) => compareStrings(a.scenario, b.scenario) || compareStrings(a.method, b.method) || a.seed - b.seed || compareStrings(a.relative, b.relative));
}

async function entries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort(compareStrings);
  } catch (err) {
    throw dirError(dir, err);
  }
}

async function subdirs(dir: string): Promise<string[]> {
  let list;
  try {
    list = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw dirError(dir, err);
  }
  return list
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(compareStrings);
}

function dirError(dir: string, err: unknown): CttaError {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') {
    return new CttaError(`results directory not found: ${dir}`, { fix: 'pass the --out directory of `ctta run`', cause: err });
  }
  return new CttaError(`cannot read results directory ${dir}: ${code ?? String(err)}`, { fix: 'check that it exists and that you may read it', cause: err });
}

/** Parses and checks one result file; any damage is a CttaError naming the file and line. */
export async function readRunFile(file: string): Promise<FinishedRun> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CttaError(`cannot read result file ${file}: ${(err as NodeJS.ErrnoException)?.code ?? String(err)}`, { fix: 'check that you may read it', cause: err });
  }
  return parseRunText(text, file);
}

/** Parses the text of a result file (exported for tests and for callers holding the bytes). */
export function parseRunText(text: string, file: string): FinishedRun {
  const damaged = (line: number, what: string) => new CttaError(`${file}: line ${line}: ${what}`, { fix: REDO });
  const lines = text.split('\n');
  let header: RunHeader | undefined;
  let summary: RunSummary | undefined;
  const batches: BatchRecord[] = [];
  let last = 0;
  for (let k = 0; k < lines.length; k++) {
    const raw = lines[k]!;
    if (raw.trim() === '') continue;
    const line = k + 1;
    last = line;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw damaged(line, 'not valid JSON (a cut-off or corrupted line)');
    }
    if (summary) throw damaged(line, 'a record after the summary');
    const type = (value as { type?: unknown } | null)?.type;
    if (!header) {
      if (type !== 'header') throw damaged(line, `the first record must be the header, found ${describeType(type)}`);
      // Checked before the schema: another format is not damage, and needs another fix.
      const format = (value as { format?: unknown }).format;
      if (typeof format === 'string' && format !== RESULTS_FORMAT) {
        throw new CttaError(`${file}: line ${line}: format "${format}" is not ${RESULTS_FORMAT}`, {
          fix: 'read it with the ctta version that wrote it (see the header\'s "ctta" field), or re-run it with this one',
        });
      }
      header = check(runHeaderSchema, value, damaged, line);
      continue;
    }
    if (type === 'batch') batches.push(check(batchRecordSchema, value, damaged, line));
    else if (type === 'summary') summary = check(runSummarySchema, value, damaged, line);
    else throw damaged(line, `unknown record ${describeType(type)} (expected "batch" or "summary")`);
  }
  if (!header) throw damaged(1, 'empty file, expected a header record');
  if (!summary) throw damaged(last, 'no summary record: the run did not finish');
  const m = FINISHED_FILE.exec(file.split(/[\\/]/).pop() ?? '');
  if (m && Number(m[1]) !== header.seed) {
    throw damaged(1, `header seed ${header.seed} does not match the file name (seed ${m[1]})`);
  }
  return { file, header, batches, summary };
}

function describeType(type: unknown): string {
  return type === undefined ? 'a record without "type"' : `type ${JSON.stringify(type)}`;
}

function check<T>(schema: z.ZodType<T>, value: unknown, damaged: (line: number, what: string) => CttaError, line: number): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw damaged(line, describeIssue(r.error));
}
