// `--threads N`: the threaded wasm build really runs N threads, and a run's results are identical
// to one thread's (XNNPACK splits output tiles, never a sum). Each run is its own process: the
// thread count is fixed when the backend starts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResults } from '../src/report/results.js';
import { MODEL, runCli } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ctta-threads-'));

describe('wasm threads', () => {
  it('ctta info --threads 2 starts two threads', () => {
    const r = runCli(['info', '--backend', 'wasm', '--threads', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).backend.threads).toBe(2);
  });

  it('a TENT run on 2 threads gives the same per-batch results and calibration as on 1', async () => {
    const dir = tmp();
    const file = join(dir, 'tiny.json');
    writeFileSync(file, JSON.stringify({
      name: 'tiny-threads', dataset: 'fashion-mnist', model: MODEL, corruptions: ['gaussian_noise', 'fog'], severities: [5],
      ordering: { name: 'continual', params: { samplesPerDomain: 128 } }, batchSize: 32, seeds: [0], methods: ['tent'],
    }));
    const runs = [];
    for (const threads of ['1', '2']) {
      const out = join(dir, `out-${threads}`);
      const r = runCli(['run', file, '--backend', 'wasm', '--threads', threads, '--out', out, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      runs.push((await readResults(out))[0]!);
    }
    const [one, two] = runs;
    expect(one!.header.threads).toBeUndefined();
    expect(two!.header.threads).toBe(2);
    expect(two!.batches.map((b) => b.perDomain)).toEqual(one!.batches.map((b) => b.perDomain));
    // ECE depends on every confidence: equal to the last bit only if every logit is.
    expect(two!.summary.ece).toBe(one!.summary.ece);
    expect(two!.summary.meanError).toBe(one!.summary.meanError);
  });

  it('--threads with --workers is refused in one line', () => {
    const r = runCli(['run', 'fmnist-c-continual', '--threads', '2', '--workers', '2', '--out', tmp()]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/--threads 2 with --workers 2: choose one \(fix: /)]);
  });
});
