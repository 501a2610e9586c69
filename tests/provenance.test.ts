/**
 * Checkpoints say how to reproduce them: the command and the code version that ran it (a commit,
 * and whether the work tree was clean).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from './helpers.js';

describe('checkpoint provenance', () => {
  it('ctta pretrain records the commit it ran from', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'ctta-pretrain-')), 'm');
    const r = runCli(['pretrain', '--epochs', '1', '--limit', '256', '--eval-limit', '64', '--batch-size', '64', '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    expect(m.createdWith.commit).toBe(head);
    expect(typeof m.createdWith.dirty).toBe('boolean');
  });
});
