/**
 * Output folders: created and proven writable before any work starts, with one-line errors that
 * name the path and the problem. Every command that writes (run, merge, pretrain, table --out,
 * plot, show) goes through here, so a read-only, full or non-directory `--out` fails in the first
 * second, not after an hour of training.
 */
import { mkdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, parse, resolve, sep } from 'node:path';
import { CttaError } from '../errors.js';

/** A filesystem error code turned into words a user can act on. */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a folder';
    case 'EISDIR':
      return 'is a folder, not a file';
    case 'ENOENT':
      return 'no such file or folder';
    case 'EEXIST':
      return 'already exists';
    case 'ENAMETOOLONG':
      return 'name too long';
    default:
      return code ? `${code}: ${(err as Error).message.split('\n')[0]}` : String((err as Error)?.message ?? err);
  }
}

/** Pseudo file systems where Node's recursive mkdir can loop forever and nothing belongs. */
const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'];

/**
 * Creates `dir` (and its parents) and checks that a file can be written in it. Creates one level
 * at a time instead of `mkdir({ recursive: true })`, which spins at 100% CPU on some paths of
 * pseudo file systems (e.g. under /proc).
 */
export function ensureOutputDir(dir: string, what = '--out'): string {
  const full = resolve(dir);
  if (VIRTUAL_ROOTS.some((root) => full === root || full.startsWith(root + sep))) {
    throw new CttaError(`${what} ${dir} is inside ${full.split(sep).slice(0, 2).join(sep)}, a virtual file system`, { fix: 'write results to a normal folder' });
  }
  const missing: string[] = [];
  for (let p = full; ; p = dirname(p)) {
    let isDir: boolean | undefined;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw outputError(what, dir, p, err);
    }
    if (isDir === true) break;
    if (isDir === false) throw new CttaError(`${what} ${dir}: ${p} is a file, not a folder`, { fix: 'choose another --out, or move the file away' });
    if (p === parse(p).root) break;
    missing.unshift(p);
  }
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw outputError(what, dir, p, err);
    }
  }
  const probe = resolve(full, `.ctta-write-check-${process.pid}`);
  try {
    writeFileSync(probe, 'ok');
    unlinkSync(probe);
  } catch (err) {
    throw outputError(what, dir, full, err);
  }
  return full;
}

/** Like ensureOutputDir, for the folder that will hold the output file `file`. */
export function ensureOutputFile(file: string, what = '--out'): string {
  const full = resolve(file);
  try {
    if (statSync(full).isDirectory()) throw new CttaError(`${what} ${file} is a folder`, { fix: 'give a file name, e.g. results/table.md' });
  } catch (err) {
    if (err instanceof CttaError) throw err;
  }
  ensureOutputDir(dirname(full), what);
  return full;
}

function outputError(what: string, given: string, at: string, err: unknown): CttaError {
  const where = resolve(given) === at ? given : `${given} (at ${at})`;
  return new CttaError(`cannot write ${what} ${where}: ${describeFsError(err)}`, { fix: 'choose a folder you can write to' });
}
