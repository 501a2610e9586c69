// What `ctta run` and `ctta table` print for people: a summary that fits a terminal with rows in
// --methods order, a progress line within 80 columns, and the table as JSON for programs.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUN_BAR_TAIL, runBarFormat } from '../src/cli/progress.js';
import { MODEL, runCli } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ctta-output-'));

function tinyScenario(dir: string): string {
  const file = join(dir, 'tiny.json');
  writeFileSync(file, JSON.stringify({
    dataset: 'fashion-mnist', model: MODEL, corruptions: ['gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur', 'fog'], severities: [5],
    ordering: { name: 'continual', params: { samplesPerDomain: 32 } }, batchSize: 32, seeds: [0], methods: ['source'],
  }));
  return file;
}

describe('readable output', () => {
  it('ctta run prints a summary under 100 columns, rows in --methods order, and says where the full table is', () => {
    const dir = tmp();
    const out = join(dir, 'runs');
    const r = runCli(['run', tinyScenario(dir), '--methods', 'tent,source,bn', '--seeds', '0,1', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const table = r.stdout.split('\n').filter((l) => l.startsWith('|'));
    expect(table[0]!.split('|').map((c) => c.trim())).toEqual(['', 'method', 'seeds', 'mean err', 'online err', 'ECE', 'img/s', 'peak MiB', 'state MiB', '']);
    expect(table.slice(2).map((l) => l.split('|')[1]!.trim())).toEqual(['tent', 'source', 'bn']);
    for (const line of table) expect(line.length).toBeLessThanOrEqual(100);
    expect(r.stderr).toContain(`per-domain table: ctta table ${out} --scenario tiny`);
    expect(r.stderr).toMatch(/^run 1\/6 tiny tent seed 0: setting up$/m);
    // The per-domain table is one option away.
    const full = runCli(['run', tinyScenario(dir), '--methods', 'tent,source,bn', '--seeds', '0,1', '--out', out, '--table', 'full']);
    expect(full.stdout).toMatch(/\| glass_blur-5 \|/);
  });

  it('a method with a long set-up says what it is doing (EATA\'s Fisher pass), alone and on a worker', () => {
    const dir = tmp();
    const args = ['run', tinyScenario(dir), '--methods', 'eata,source', '--set', 'eata.fisherSize=64', '--seeds', '0'];
    const one = runCli([...args, '--out', join(dir, 'a')]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stderr).toMatch(/^run 1\/2 tiny eata seed 0: setting up\nrun 1\/2 tiny eata seed 0: EATA: Fisher information from 64 clean images$/m);
    const two = runCli([...args, '--out', join(dir, 'b'), '--workers', '2']);
    expect(two.code, two.stderr).toBe(0);
    expect(two.stderr).toMatch(/^tiny eata seed 0: EATA: Fisher information from 64 clean images \[worker \d\]$/m);
  });

  it('ctta table --json gives every cell with its statistics; --layout summary is what run prints', () => {
    const dir = tmp();
    const out = join(dir, 'runs');
    expect(runCli(['run', tinyScenario(dir), '--methods', 'source,bn', '--out', out, '--quiet']).code).toBe(0);
    const r = runCli(['table', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout);
    expect(rows.map((x: { method: string }) => x.method)).toEqual(['source', 'bn']);
    const mean = rows[1].cells.find((c: { column: string }) => c.column === 'mean');
    expect(mean.stat).toMatchObject({ n: 1, std: null });
    expect(mean.stat.mean).toBeGreaterThan(0);
    const summary = runCli(['table', out, '--layout', 'summary']);
    expect(summary.stdout).toMatch(/\| method \| seeds \| mean err \| online err \| +ECE \|/);
  });

  it('a run progress line fits 80 columns at its widest', () => {
    for (const [k, n, name] of [[1, 1, 'x s0'], [999, 999, 'fmnist-class-incremental-imbalanced er-m500 s12']] as const) {
      const { format, barSize } = runBarFormat(k, n, name);
      const worst = format
        .replace('{bar}', '#'.repeat(barSize))
        .replace('{percentage}', '100')
        .replace('{err}', '100.0')
        .replace('{ips}', '99999')
        .replace('{eta_t}', '59m59s')
        .replace('{sweep}', ' all 99h59m');
      expect(worst.length, worst).toBeLessThanOrEqual(80);
      expect(worst.length - worst.indexOf(']') - 1).toBeLessThanOrEqual(RUN_BAR_TAIL);
      expect(barSize).toBeGreaterThanOrEqual(6);
    }
  });
});
