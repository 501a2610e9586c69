/** Run locks: one writer per run file; a crashed writer's lock does not block the next one. */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { liveLock, lockFile, tryLock } from '../src/eval/run-lock.js';

const runFile = () => join(mkdtempSync(join(tmpdir(), 'ctta-lock-')), 's', 'm', 'seed-0.jsonl');
const fakeLock = (file: string, fields: Record<string, unknown>) =>
  writeFileSync(lockFile(file), JSON.stringify({ pid: 1, host: hostname(), startedAt: 'then', identity: 'other', ...fields }));

describe('run locks', () => {
  it('one holder at a time; released locks can be taken again', () => {
    const file = runFile();
    const a = tryLock(file, 'x');
    expect(a.acquired).toBe(true);
    const b = tryLock(file, 'x');
    expect(b).toMatchObject({ acquired: false, holder: { pid: process.pid, identity: 'x' } });
    if (a.acquired) a.release();
    expect(existsSync(lockFile(file))).toBe(false);
    const c = tryLock(file, 'x');
    expect(c.acquired).toBe(true);
    if (c.acquired) c.release();
  });

  it('takes over the lock of a process that no longer exists, and damaged lock files', () => {
    const file = runFile();
    tryLock(file, 'probe'); // creates the folder
    // pid 2^22 + 1 is above Linux's pid_max: no such process.
    fakeLock(file, { pid: 4194305 });
    expect(liveLock(file)).toBeUndefined();
    const taken = tryLock(file, 'mine');
    expect(taken.acquired).toBe(true);
    expect(JSON.parse(readFileSync(lockFile(file), 'utf8'))).toMatchObject({ pid: process.pid, identity: 'mine' });
    if (taken.acquired) taken.release();
    writeFileSync(lockFile(file), '{"pid": 12'); // cut off
    expect(tryLock(file, 'mine').acquired).toBe(true);
  });

  it('respects live processes and other hosts', () => {
    const file = runFile();
    tryLock(file, 'probe');
    fakeLock(file, { pid: 1 }); // init: alive
    expect(tryLock(file, 'mine')).toMatchObject({ acquired: false, holder: { pid: 1 } });
    expect(liveLock(file)?.identity).toBe('other');
    fakeLock(file, { pid: 4194305, host: 'another-host' });
    expect(tryLock(file, 'mine')).toMatchObject({ acquired: false, holder: { host: 'another-host' } });
  });
});
