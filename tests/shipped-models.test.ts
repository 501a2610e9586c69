/**
 * Shipped checkpoints say how to reproduce them: the command, the code version that ran it (a
 * commit of a clean work tree) and checksums of every file; the ViDA checkpoint names the exact
 * backbone it was warmed up on.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from './helpers.js';

const manifest = (dir: string) => JSON.parse(readFileSync(join(ROOT, 'models', dir, 'manifest.json'), 'utf8'));

describe('shipped checkpoints', () => {
  it.each(['fmnist-resnet8', 'fmnist-resnet8-base5', 'fmnist-resnet8-vida'])('%s records its command, code version and checksums', (dir) => {
    const m = manifest(dir);
    expect(m.command).toMatch(new RegExp(`^ctta pretrain .*--out models/${dir}( |$)`));
    expect(m.createdWith.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(m.createdWith.dirty).toBe(false);
    expect(m.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.modelJsonSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the ViDA checkpoint was warmed up on the shipped backbone', () => {
    expect(manifest('fmnist-resnet8-vida').training.warmup.baseWeightsSha256).toBe(manifest('fmnist-resnet8').weightsSha256);
    expect(manifest('fmnist-resnet8-vida').weightsSha256).toBe(manifest('fmnist-resnet8').weightsSha256);
  });

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
