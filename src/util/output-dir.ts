/**
 * Output folders and files: checked (and created) before any work starts, with one-line errors
 * that name the path and the problem. Every command that writes (run, merge, pretrain, table
 * --out, plot, show) goes through here, so a read-only, full or non-directory `--out` fails in
 * the first second, not after an hour of training, and a failed write never leaves a
 * half-written file behind (writes go to a temporary name, then are renamed).
 *
 * Folders are created one level at a time, never with `mkdir({ recursive: true })`, which spins
 * at 100% CPU on some paths of pseudo file systems (e.g. under /proc).
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, realpathSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, parse, resolve, sep } from 'node:path';
import { CttaError } from '../errors.js';

/** A filesystem error code turned into words a user can act on. */
export function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
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
    case 'EFBIG':
      return 'file too large for this file system';
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
    case 'ELOOP':
      return 'too many levels of symbolic links';
    case 'EIO':
      return 'input/output error (failing disk or lost network mount?)';
    case 'EBUSY':
      return 'resource busy';
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files';
    default: {
      const message = (err as Error | undefined)?.message;
      const first = (message ?? String(err)).split('\n')[0];
      return code ? `${code}: ${first}` : first!;
    }
  }
}

/** What to do about a filesystem error, for the "(fix: ...)" part of the line. */
export function fsErrorFix(err: unknown, what = '--out'): string {
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return `free some space, or choose another ${what} on a disk with room, and run again`;
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return `choose a ${what} you can write to`;
    default:
      return `check the path, or choose another ${what}`;
  }
}

/** Pseudo file systems where Node's recursive mkdir can loop forever and nothing belongs. */
const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'];
/** Real (tmpfs) folders inside them that programs do write to. */
const WRITABLE_INSIDE_VIRTUAL = ['/dev/shm'];

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root + sep);
}

function virtualRoot(full: string): string | undefined {
  if (WRITABLE_INSIDE_VIRTUAL.some((root) => under(full, root))) return undefined;
  return VIRTUAL_ROOTS.find((root) => under(full, root));
}

/** How a path given by the user is named in messages: as given, plus where the problem is. */
function where(given: string, full: string, at: string): string {
  return full === at ? given : `${given} (at ${at})`;
}

interface Walk {
  /** The nearest folder of `full` (itself included) that exists. */
  existing: string;
  /** The folders to create, outermost first. */
  missing: string[];
}

/**
 * Checks what can be checked without creating anything: not inside /proc, /sys or /dev (also
 * through a symbolic link), no file where a folder is needed, and the nearest existing folder is
 * writable. `given` is the path as the user wrote it (for messages), `full` the folder.
 */
function walk(given: string, full: string, what: string, needed: 'folder' | 'file-folder'): Walk {
  const refuseVirtual = (path: string): void => {
    const root = virtualRoot(path);
    if (root) throw new CttaError(`${what} ${given} is inside ${root}, a virtual file system`, { fix: `choose a ${what} in a normal folder` });
  };
  refuseVirtual(full);
  const missing: string[] = [];
  let p = full;
  for (;;) {
    let isDir: boolean | undefined;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOTDIR: a file further up; keep walking up to name it.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw outputError(what, given, full, p, err);
    }
    if (isDir === true) break;
    if (isDir === false) {
      if (p === full && needed === 'folder') throw new CttaError(`${what} ${given} is a file, not a folder`, { fix: `choose another ${what}, or move the file away` });
      throw new CttaError(`${what} ${given}: ${p} is a file, not a folder`, { fix: `choose another ${what}, or move the file away` });
    }
    if (p === parse(p).root) break;
    missing.unshift(p);
    p = dirname(p);
  }
  let real = p;
  try {
    real = realpathSync(p);
  } catch {
    /* keep p */
  }
  refuseVirtual(real);
  try {
    accessSync(p, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw outputError(what, given, full, p, err);
  }
  return { existing: p, missing };
}

/**
 * Checks, without creating anything, that `dir` can be created (or is a folder) and written to:
 * for a check before any work whose failure must leave the disk as it was. Throws a one-line
 * CttaError naming `dir` and the problem. Returns the absolute path.
 */
export function checkOutputDir(dir: string, what = '--out'): string {
  const full = resolve(dir);
  walk(dir, full, what, 'folder');
  return full;
}

/**
 * Refuses an --out whose name does not end in one of `extensions` (case-insensitive), rather than
 * write one format under another's name; `why` says what the command writes.
 */
export function requireExtension(file: string, extensions: readonly string[], why: string): void {
  if (extensions.some((e) => file.toLowerCase().endsWith(e))) return;
  throw new CttaError(`--out ${file}: ${why}, so the file name must end in ${extensions[0]}`, { fix: `e.g. --out ${file.replace(/\.[^./\\]*$/, '')}${extensions[0]}` });
}

/** Like checkOutputDir, for an output file: also refuses a folder where the file should be. */
export function checkOutputFile(file: string, what = '--out'): string {
  const full = resolve(file);
  refuseFolder(file, full, what);
  walk(file, dirname(full), what, 'file-folder');
  return full;
}

/**
 * Creates `dir` (and its parents, one level at a time) and proves that a file can be written in
 * it. Throws a one-line CttaError naming `dir` and the problem. Returns the absolute path.
 */
export function ensureOutputDir(dir: string, what = '--out'): string {
  const full = resolve(dir);
  create(dir, full, what, 'folder');
  return full;
}

/** Like ensureOutputDir, for the folder that will hold the output file `file`. */
export function ensureOutputFile(file: string, what = '--out'): string {
  const full = resolve(file);
  refuseFolder(file, full, what);
  create(file, dirname(full), what, 'file-folder');
  return full;
}

/**
 * Writes `data` to `file` atomically: into a temporary file beside it (flushed to disk), then
 * renamed over `file`, so readers see the old file or the whole new one, never a half-written
 * one. Creates the folder if needed. Any failure (e.g. the disk fills up during the write)
 * removes the temporary file and throws a one-line CttaError naming `file`.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, what = '--out'): Promise<void> {
  const full = ensureOutputFile(file, what);
  const temp = join(dirname(full), `.${basename(full)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, full);
  } catch (err) {
    await handle?.close().catch(() => {});
    await rm(temp, { force: true }).catch(() => {});
    throw new CttaError(`cannot write ${what} ${file}: ${describeFsError(err)}`, { fix: fsErrorFix(err, what), cause: err });
  }
}

function refuseFolder(given: string, full: string, what: string): void {
  let isDir = false;
  try {
    isDir = statSync(full).isDirectory();
  } catch {
    /* missing (or a problem further up, reported by walk) */
  }
  if (isDir) throw new CttaError(`${what} ${given} is a folder, not a file`, { fix: `give a file name, e.g. ${join(given, 'out' + extensionOf(given))}` });
}

function extensionOf(path: string): string {
  const ext = parse(path).ext;
  return ext || '.txt';
}

function create(given: string, full: string, what: string, needed: 'folder' | 'file-folder'): void {
  const { missing } = walk(given, full, what, needed);
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw outputError(what, given, full, p, err);
    }
  }
  const probe = join(full, `.ctta-write-check-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(probe, 'ok');
    unlinkSync(probe);
  } catch (err) {
    throw outputError(what, given, full, full, err);
  }
}

function outputError(what: string, given: string, full: string, at: string, err: unknown): CttaError {
  return new CttaError(`cannot write ${what} ${where(given, full, at)}: ${describeFsError(err)}`, { fix: fsErrorFix(err, what), cause: err });
}
