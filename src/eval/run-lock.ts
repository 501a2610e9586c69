/**
 * One writer per run file. Before a run starts, its sweep creates `<run file>.lock` exclusively
 * (O_EXCL), holding the process id, host and the run's identity; it is removed when the run ends.
 * A second `ctta run` on the same `--out` finds the lock and skips that run (same identity: the
 * other process is computing the very same result) or reports a conflict (another identity).
 * A lock whose process is gone (kill -9, power loss) on this host is stale and is taken over, so
 * a crash never blocks the next attempt (Ctrl-C removes this process's locks on exit). Locks from
 * other hosts (a shared file system) are respected until removed by hand: we cannot tell whether
 * their process still runs.
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';

export interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
  /** canonical JSON of the run's identity fields (see run-identity.ts). */
  identity: string;
}

export type LockResult = { acquired: true; release: () => void } | { acquired: false; holder: LockInfo | undefined; file: string };

export function lockFile(runFile: string): string {
  return `${runFile}.lock`;
}

/** Locks this process holds, removed on exit (Ctrl-C exits through process.exit). */
const held = new Map<string, LockInfo>();
let exitHook = false;

export function tryLock(runFile: string, identity: string): LockResult {
  const file = lockFile(runFile);
  // The run's folder (under an --out that was checked to be a normal, writable folder).
  mkdirSync(dirname(runFile), { recursive: true });
  const mine: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), identity };
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => held.forEach((info, f) => release(f, info)));
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    if (create(file, mine)) {
      held.set(file, mine);
      return { acquired: true, release: () => release(file, mine) };
    }
    const holder = readLock(file);
    if (holder === 'missing') continue; // released between our two calls: try again
    if (holder === undefined) {
      removeIfUnreadable(file);
      continue;
    }
    if (!isStale(holder)) return { acquired: false, holder, file };
    if (!takeOver(file, holder)) return { acquired: false, holder: readLockOrUndefined(file), file };
  }
  return { acquired: false, holder: readLockOrUndefined(file), file };
}

/** The lock of a run held by a live process (or another host), if any: a stale one does not count. */
export function liveLock(runFile: string): LockInfo | undefined {
  const holder = readLockOrUndefined(lockFile(runFile));
  return holder && !isStale(holder) ? holder : undefined;
}

function create(file: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, JSON.stringify(info) + '\n');
  } finally {
    closeSync(fd);
  }
  return true;
}

function readLock(file: string): LockInfo | undefined | 'missing' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    return undefined;
  }
  try {
    const v = JSON.parse(text) as LockInfo;
    return typeof v.pid === 'number' && typeof v.host === 'string' ? v : undefined;
  } catch {
    return undefined; // being written right now (create then write), or damaged
  }
}

function readLockOrUndefined(file: string): LockInfo | undefined {
  const v = readLock(file);
  return v === 'missing' ? undefined : v;
}

/** A lock of a process that no longer exists on this host. */
function isStale(info: LockInfo): boolean {
  if (info.host !== hostname()) return false;
  if (info.pid === process.pid) return false; // ours (another job of this very process)
  try {
    process.kill(info.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Moves a stale lock aside atomically. Two processes may both judge it stale; only one rename
 * succeeds. If what we moved is not the lock we judged (it was replaced in between by a live
 * one), put it back.
 */
function takeOver(file: string, stale: LockInfo): boolean {
  const aside = `${file}.stale-${process.pid}`;
  try {
    renameSync(file, aside);
  } catch {
    return true; // someone else moved it: loop and try to create ours
  }
  const moved = readLockOrUndefined(aside);
  if (moved && (moved.pid !== stale.pid || moved.startedAt !== stale.startedAt)) {
    try {
      linkSync(aside, file); // fails if a new lock exists already: then the newest one stands
    } catch {
      /* keep the newer lock */
    }
    rmSync(aside, { force: true });
    return false;
  }
  rmSync(aside, { force: true });
  return true;
}

/** A lock file we cannot parse is damaged if it stays so for a moment (not one being written). */
function removeIfUnreadable(file: string): void {
  const deadline = Date.now() + 200;
  while (Date.now() < deadline) {
    if (readLock(file) !== undefined) return; // gone, or now readable: the caller looks again
  }
  rmSync(file, { force: true });
}

function release(file: string, mine: LockInfo): void {
  held.delete(file);
  const now = readLockOrUndefined(file);
  // Only our own lock: never remove one a later process took over.
  if (now && now.pid === mine.pid && now.startedAt === mine.startedAt && now.host === mine.host) rmSync(file, { force: true });
}
