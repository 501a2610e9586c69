// Command-line overrides: `--set` mistakes get one line each; `--scenario-set`, `--limit` and
// `--dry-run` change what runs (and the scenario's identity) without editing the file.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResults } from '../src/report/results.js';
import { MODEL, runCli } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ctta-overrides-'));
const lines = (text: string) => text.trim().split('\n').filter(Boolean);

/** Two corruptions x 64 images, batch 32: four batches. */
function tinyScenario(dir: string): string {
  const file = join(dir, 'tiny.json');
  writeFileSync(file, JSON.stringify({
    dataset: 'fashion-mnist', model: MODEL, corruptions: ['gaussian_noise', 'fog'], severities: [5],
    ordering: { name: 'continual', params: { samplesPerDomain: 64 } }, batchSize: 32, seeds: [0], methods: ['bn'],
  }));
  return file;
}

describe('--set mistakes', () => {
  it.each([
    ['batchSize=16', /--set "batchSize=16" sets a scenario field, not a method option \(fix: use --scenario-set batchSize=16\)/],
    ['foo', /--set "foo" is not method\.option=value \(fix: /],
    ['bn.alpha', /--set "bn\.alpha" is not method\.option=value \(fix: /],
    ['bn.=1', /--set "bn\.=1" is not method\.option=value \(fix: /],
    ['bn.nosuch=1', /option/],
    ['tent.lr=1', /--set names "tent", which is not among the methods run/],
  ])('--set %s: exit 2 and one line', (entry, message) => {
    const out = join(tmp(), 'runs');
    const r = runCli(['run', 'fmnist-c-continual', '--methods', 'bn', '--set', entry, '--out', out]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(message)]);
    expect(existsSync(out)).toBe(false);
  });
});

describe('--scenario-set, --limit, --dry-run', () => {
  it('--scenario-set changes the stream and the scenario hash, in this thread and in workers', async () => {
    const dir = tmp();
    const file = tinyScenario(dir);
    const plain = runCli(['run', file, '--out', join(dir, 'plain'), '--quiet']);
    expect(plain.code, plain.stderr).toBe(0);
    for (const workers of ['1', '2']) {
      const out = join(dir, `set-${workers}`);
      const r = runCli(['run', file, '--methods', 'bn,source', '--scenario-set', 'batchSize=16', '--scenario-set', 'ordering.params.samplesPerDomain=48', '--workers', workers, '--out', out, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      for (const run of await readResults(out)) {
        expect(run.batches.map((b) => b.end - b.start)).toEqual([16, 16, 16, 16, 16, 16]);
        expect(run.summary.n).toBe(96);
      }
    }
    const [before] = await readResults(join(dir, 'plain'));
    const [after] = await readResults(join(dir, 'set-1'));
    expect(before!.batches.map((b) => b.end - b.start)).toEqual([32, 32, 32, 32]);
    expect(after!.header.scenarioHash).not.toBe(before!.header.scenarioHash);
  });

  it('a bad --scenario-set is one line naming the field', () => {
    const dir = tmp();
    const file = tinyScenario(dir);
    for (const [entry, message] of [
      ['batchsize=16', /tiny\.json \(with --scenario-set batchsize=16\): \(top level\): unknown field\(s\) batchsize/],
      ['batchSize=0', /batchSize: /],
      ['batchSize', /--scenario-set "batchSize" is not field=value/],
      ['batchSize.x=1', /batchSize in .*tiny\.json is not an object/],
    ] as const) {
      const r = runCli(['run', file, '--scenario-set', entry, '--out', join(dir, 'runs')]);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([expect.stringMatching(message)]);
    }
    expect(existsSync(join(dir, 'runs'))).toBe(false);
  });

  it('--limit runs the first batches, says so, and is never taken for the whole stream', async () => {
    const dir = tmp();
    const file = tinyScenario(dir);
    const out = join(dir, 'runs');
    const r = runCli(['run', file, '--limit', '3', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: tiny runs only its first 3 batch\(es\)/);
    const [run] = await readResults(out);
    expect(run!.batches.map((b) => [b.start, b.end])).toEqual([[0, 32], [32, 64], [64, 96]]);
    expect(run!.header.warnings).toEqual([expect.stringMatching(/first 3 batch/)]);
    // The whole stream into the same folder: another scenario identity, refused, not reused.
    const whole = runCli(['run', file, '--out', out]);
    expect(whole.code).toBe(2);
    expect(lines(whole.stderr)).toEqual([expect.stringMatching(/scenario tiny has changed/)]);
  });

  it('--dry-run prints the resolved scenario and the grid, and writes nothing', () => {
    const dir = tmp();
    const file = tinyScenario(dir);
    const out = join(dir, 'runs');
    const r = runCli(['run', file, '--methods', 'bn,k1=lame', '--seeds', '0,1', '--scenario-set', 'batchSize=16', '--dry-run', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}batchSize: 16$/m);
    expect(r.stdout).toMatch(/^ {2}domains: gaussian_noise-5, fog-5$/m);
    expect(r.stdout).toMatch(/^4 run\(s\):$/m);
    expect(r.stdout).toContain(`tiny k1=lame seed 1 -> ${join(out, 'tiny/k1/seed-1.jsonl')}`);
    expect(existsSync(out)).toBe(false);
  });
});
