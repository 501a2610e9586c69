/**
 * Joining the shards of a sweep (`ctta run --shard i/n` on several machines) into one results
 * directory. Runs are identified by their path, `<scenario>/<method>/seed-<k>.jsonl`; the same run
 * in two shards is fine when the files are byte-identical (a shard re-sent twice) and an error
 * otherwise, since only one of two different measurements of a run can go in the table. The seeds
 * of one row must also be the same run but for the seed (results.ts `checkRowIdentity`).
 */
import { createHash } from 'node:crypto';
import { copyFile, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CttaError } from '../errors.js';
import { checkOutputDir, describeFsError, ensureOutputDir, fsErrorFix } from '../util/output-dir.js';
import type { RunHeader } from '../eval/records.js';
import { checkRowIdentity, compareStrings, listRunFiles, parseRunText, runName } from './results.js';

export interface MergeReport {
  out: string;
  /** Finished runs in `out` after the merge that came from the inputs. */
  runs: number;
  /** Files written to `out`. */
  copied: number;
  /** Runs found more than once with identical bytes (or already in `out`), copied once. */
  identical: number;
}

interface Source {
  file: string;
  sha256: string;
  header: RunHeader;
}

/**
 * Copies every finished run of `dirs` into `out` (created if needed). All inputs are checked
 * before anything is written, so a conflict leaves `out` as it was.
 */
export async function mergeResults(dirs: string[], out: string): Promise<MergeReport> {
  if (dirs.length === 0) throw new CttaError('nothing to merge: no result directories given', { fix: 'pass one or more directories written by `ctta run`' });
  // A bad --out (a file, a file in the path, /proc, read-only) fails before reading any input,
  // and without creating anything.
  checkOutputDir(out, '--out');
  const runs = new Map<string, Source>();
  let identical = 0;
  for (const dir of dirs) {
    for (const f of await listRunFiles(dir)) {
      const source = await fingerprint(f.file);
      const seen = runs.get(f.relative);
      if (!seen) runs.set(f.relative, source);
      else if (seen.sha256 === source.sha256) identical++;
      else throw conflict(seen.file, source.file, f.relative);
    }
  }
  const existing = new Map<string, Source>();
  if (await isDirectory(out)) for (const f of await listRunFiles(out)) existing.set(f.relative, await fingerprint(f.file));
  const toCopy: [string, Source][] = [];
  for (const [relative, source] of runs) {
    const there = existing.get(relative);
    if (there === undefined) {
      toCopy.push([relative, source]);
      continue;
    }
    if (there.sha256 !== source.sha256) throw conflict(there.file, source.file, relative);
    identical++;
  }
  // The seeds of one table row must be one run but for the seed: shards of two sweeps with
  // different options must not become one row.
  const after = [...existing.values(), ...toCopy.map(([, s]) => s)];
  after.sort((a, b) => compareStrings(a.header.scenario, b.header.scenario) || compareStrings(runName(a.header), runName(b.header)) || a.header.seed - b.header.seed);
  checkRowIdentity(after);
  ensureOutputDir(out, '--out');
  const folders = new Set<string>();
  for (const [relative, source] of toCopy) {
    const dest = join(out, ...relative.split('/'));
    if (!folders.has(dirname(dest))) {
      ensureOutputDir(dirname(dest), '--out');
      folders.add(dirname(dest));
    }
    // `.partial` until complete: readers skip it, so an interrupted or failed (disk full) merge
    // never leaves a half-copied file that counts as a finished run.
    const partial = `${dest}.merge-${process.pid}.partial`;
    try {
      await copyFile(source.file, partial);
      await rename(partial, dest);
    } catch (err) {
      await rm(partial, { force: true }).catch(() => {});
      throw new CttaError(`cannot write ${dest} (copying ${source.file}): ${describeFsError(err)}`, { fix: fsErrorFix(err), cause: err });
    }
  }
  return { out, runs: runs.size, copied: toCopy.length, identical };
}

/** Validates the file (finished, not damaged) and hashes its bytes. */
async function fingerprint(file: string): Promise<Source> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new CttaError(`cannot read result file ${file}: ${(err as NodeJS.ErrnoException)?.code ?? String(err)}`, { fix: 'check that you may read it', cause: err });
  }
  const { header } = parseRunText(bytes.toString('utf8'), file);
  return { file, sha256: createHash('sha256').update(bytes).digest('hex'), header };
}

function conflict(a: string, b: string, relative: string): CttaError {
  return new CttaError(`${a} and ${b} are different results of the same run ${relative}`, {
    fix: 'keep the one you trust: delete the other (or re-run that run) and merge again',
  });
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
