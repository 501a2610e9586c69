/**
 * Finding the files a checkpoint names (weights, adapters) inside its own folder. The names come
 * from model.json and manifest.json, which are untrusted: a name must be relative, must not climb
 * out with `..` and must not resolve outside through a symlink. Symlinks are followed one by one
 * and each target is checked before anything is looked up there, so neither the existence, the
 * size nor the content of an outside file can reach a message.
 */
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, resolve, sep, win32 } from 'node:path';
import { CttaError } from '../errors.js';
import { quote } from '../util/json-file.js';

/** The fix for a checkpoint whose files are missing, damaged or do not match its manifest. */
export const RESTORE_FIX = 'restore the checkpoint folder (git checkout) or re-create it with the command in its manifest';

const RE_EXPORT_FIX = 're-export the model; a checkpoint may only name files inside its own folder';

type Located = { file: string } | { problem: 'absolute' | 'escapes' | 'symlink' | 'loop' | 'missing' | 'folder' };

/**
 * Where `entry` (a path read from a checkpoint file) points inside the folder whose real path is
 * `root`, without ever touching anything outside it. Walks the path one component at a time with
 * lstat; a symlink's target is checked lexically against `root` before it is followed (and then
 * walked the same way), so an outside target is refused whether it exists or not.
 */
async function locateInside(root: string, entry: string): Promise<Located> {
  if (entry.includes('\0')) return { problem: 'escapes' };
  if (posix.isAbsolute(entry) || win32.isAbsolute(entry) || /^[A-Za-z]:/.test(entry)) return { problem: 'absolute' };
  // Both separators, on every platform: `..\x` escapes on Windows, so it is refused everywhere.
  const queue = entry.split(/[\\/]+/);
  let depth = 0;
  for (const part of queue) {
    if (part === '..') depth--;
    else if (part !== '' && part !== '.') depth++;
    if (depth < 0) return { problem: 'escapes' };
  }
  let current = root; // always a real path inside root
  let links = 0;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (current === root) return { problem: 'escapes' }; // after a symlink inside
      current = dirname(current);
      continue;
    }
    const next = join(current, part);
    const s = await lstat(next).catch(() => undefined);
    if (!s) return { problem: 'missing' };
    if (s.isSymbolicLink()) {
      if (++links > 40) return { problem: 'loop' };
      const target = resolve(current, await readlink(next));
      const rel = relative(root, target);
      if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return { problem: 'symlink' };
      queue.unshift(...rel.split(sep));
      current = root;
      continue;
    }
    if (queue.some((p) => p !== '' && p !== '.') && !s.isDirectory()) return { problem: 'missing' };
    current = next;
  }
  return current === root ? { problem: 'folder' } : { file: current };
}

/**
 * The file `entry` names inside the folder `root`, or a one-line error:
 * `<shown>: <what> "<entry>" leaves the model folder`. With `ifMissing`, a missing file gives
 * what it returns (undefined: no file) instead of an error.
 */
export async function fileInside(root: string, entry: string, shown: string, what: string): Promise<string>;
export async function fileInside(root: string, entry: string, shown: string, what: string, ifMissing: () => undefined): Promise<string | undefined>;
export async function fileInside(root: string, entry: string, shown: string, what: string, ifMissing?: () => undefined): Promise<string | undefined> {
  const where = await locateInside(root, entry);
  if ('file' in where) return where.file;
  if (where.problem === 'missing' && ifMissing) return ifMissing();
  const q = `${shown}: ${what} ${quote(entry)}`;
  switch (where.problem) {
    case 'absolute':
      throw new CttaError(`${q} leaves the model folder (an absolute path)`, { fix: RE_EXPORT_FIX });
    case 'escapes':
      throw new CttaError(`${q} leaves the model folder`, { fix: RE_EXPORT_FIX });
    case 'symlink':
      throw new CttaError(`${q} leaves the model folder (through a symlink)`, { fix: `${RE_EXPORT_FIX}; copy the file into the folder instead of linking it` });
    case 'loop':
      throw new CttaError(`${q} goes through too many symlinks`, { fix: RE_EXPORT_FIX });
    case 'folder':
      throw new CttaError(`${q} names the model folder itself, not a file in it`, { fix: RE_EXPORT_FIX });
    case 'missing':
      throw new CttaError(`${q} is missing`, { fix: RESTORE_FIX });
  }
}

/** Size of a file found by `fileInside`; it must be a regular file (not a FIFO or a device). */
export async function regularFileSize(file: string, shown: string, what: string, entry: string): Promise<number> {
  const s = await stat(file).catch(() => undefined);
  if (!s) throw new CttaError(`${shown}: ${what} ${quote(entry)} cannot be read`, { fix: RESTORE_FIX });
  if (!s.isFile()) throw new CttaError(`${shown}: ${what} ${quote(entry)} is not a regular file`, { fix: RESTORE_FIX });
  return s.size;
}

/** Reads a file found by `fileInside`. */
export async function readInside(file: string, shown: string, what: string, entry: string): Promise<Uint8Array> {
  return readFile(file).catch(() => {
    throw new CttaError(`${shown}: ${what} ${quote(entry)} cannot be read`, { fix: RESTORE_FIX });
  });
}
