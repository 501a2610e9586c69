// The reproduction report (scripts/reproduction-report.mjs, the last step of `npm run reproduce`):
// its verdicts follow the numbers in the result files, and its coverage table counts the seeds
// finished for every shipped scenario and every method of its protocol. Synthetic result files
// with chosen errors, so each verdict can be made to flip.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';
import { batch, header, summary, write } from './result-files.js';

/** fmnist-c-continual runs of source, bn and tent (3 seeds) with these mean errors; bn also on the mixed stream, 1 seed. */
function folder(errors: Record<string, number>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctta-repro-'));
  for (const [method, error] of Object.entries(errors)) {
    for (const seed of [0, 1, 2]) {
      write(dir, header('fmnist-c-continual', method, seed, undefined, ['fog'], ['all']), [batch(0, 0)], summary({ errorPerDomain: { fog: error }, meanError: error, onlineError: error }));
    }
  }
  write(dir, header('fmnist-c-mixed', 'bn', 0, undefined, ['fog'], ['all']), [batch(0, 0)], summary({ errorPerDomain: { fog: 0.4 }, meanError: 0.4 }));
  return dir;
}

function report(dir: string): string {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/reproduction-report.mjs'), '--results', dir], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return readFileSync(join(dir, 'README.md'), 'utf8');
}

/** The text of one claim's section, from its heading to the next. */
const section = (md: string, heading: string) => md.slice(md.indexOf(heading), md.indexOf('\n### ', md.indexOf(heading) + 1));

describe('the reproduction report', () => {
  it('says whether BN and TENT beat Source from the numbers it shows, and flips when they do not', () => {
    const claim = '### BN and TENT beat Source';
    const agrees = section(report(folder({ source: 0.44, bn: 0.23, tent: 0.27 })), claim);
    expect(agrees).toContain('mean error Source 44.0, BN 23.0, TENT 27.0');
    expect(agrees).toContain('Verdict: **agrees**');
    const disagrees = section(report(folder({ source: 0.44, bn: 0.23, tent: 0.5 })), claim);
    expect(disagrees).toContain('TENT 50.0');
    expect(disagrees).toContain('Verdict: **disagrees**');
    // A claim without its runs says so instead of a verdict.
    expect(section(report(folder({ source: 0.44, bn: 0.23, tent: 0.27 })), '### Batch-statistics methods collapse')).toMatch(/not measured/);
  });

  it('the coverage table: seeds finished per shipped scenario and method of its protocol; "data" where the files are not here', () => {
    const md = report(folder({ source: 0.44, bn: 0.23, tent: 0.27 }));
    const row = (scenario: string) => md.split('\n').find((l) => l.startsWith(`| \`${scenario}\` |`))!.split('|').slice(2, -1).map((c) => c.trim());
    const tta = md.split('\n').find((l) => l.startsWith('| scenario | source | bn |'))!.split('|').slice(2, -1).map((c) => c.trim());
    expect(tta).toEqual(['source', 'bn', 'tent', 'lame', 'cotta', 'vida', 'eata', 'sar', 'rotta', 'nhl']);
    expect(row('fmnist-c-continual')).toEqual(['3', '3', '3', '·', '·', '·', '·', '·', '·', '·']);
    expect(row('fmnist-c-mixed')).toEqual(['·', '1/3', '·', '·', '·', '·', '·', '·', '·', '·']);
    expect(row('cifar10c-continual')).toEqual(Array(10).fill('data'));
    // The incremental scenarios get the continual-learning methods (and Source).
    expect(md).toMatch(/\| scenario \| source \| er \| acil \| aef-ocl \| ds-al \| onpro \| uer \| ear \| tame \|/);
    expect(row('fmnist-class-incremental')).toEqual(Array(9).fill('·'));
    // The base-5 checkpoint predicts 5 classes: the methods that need a head over all 10 do not apply.
    expect(row('fmnist-base5-incremental')).toEqual(['·', 'n/a', '·', '·', '·', 'n/a', 'n/a', 'n/a', 'n/a']);
    expect(md).toMatch(/^3 of the \d+ cells this machine can run have all their seeds\./m);
  });
});
