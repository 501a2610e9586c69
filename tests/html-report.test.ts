// `ctta report`: one HTML file that needs no network, loads in a real browser (Debian's headless
// Chromium, installed by .ci/run) without console errors, and draws every chart as SVG.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { MODEL, ROOT, runCli } from './helpers.js';

function chromium(args: string[]) {
  const r = spawnSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--enable-logging=stderr', '--v=0', '--virtual-time-budget=15000', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw new Error(`chromium could not start (${r.error.message}): apt-get install -y chromium`);
  return r;
}

describe('ctta report', () => {
  it('writes a self-contained page that renders every chart in headless Chromium', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctta-html-'));
    const file = join(dir, 'tiny.json');
    writeFileSync(file, JSON.stringify({
      dataset: 'fashion-mnist', model: MODEL, corruptions: ['gaussian_noise', 'fog'], severities: [5],
      ordering: { name: 'continual', params: { samplesPerDomain: 64 } }, batchSize: 32, seeds: [0, 1], methods: ['source', 'eata'],
    }));
    const out = join(dir, 'runs');
    expect(runCli(['run', file, '--out', out, '--quiet']).code).toBe(0);
    const page = join(dir, 'report.html');
    const r = runCli(['report', out, '--out', page]);
    expect(r.code, r.stderr).toBe(0);
    const html = readFileSync(page, 'utf8');
    // Self-contained: nothing to fetch.
    expect(html).not.toMatch(/<(script|img|link|iframe)[^>]+(src|href)=/i);
    expect(html).toContain('<td>');
    const charts = html.match(/class="chart"/g)?.length ?? 0;
    expect(charts).toBe(3); // online, domains, diagnostics (EATA's)
    const dom = chromium(['--dump-dom', `file://${page}`]);
    expect(dom.status, dom.stderr).toBe(0);
    expect(dom.stderr.split('\n').filter((l) => /:CONSOLE[:(]/.test(l))).toEqual([]);
    expect(dom.stdout.match(/data-rendered="true"/g)?.length).toBe(charts);
    expect(dom.stdout.match(/<svg/g)?.length ?? 0).toBeGreaterThanOrEqual(charts);
    expect(dom.stdout).toMatch(/aria-roledescription="line mark"/);
    const shot = join(dir, 'report.png');
    const s = chromium(['--window-size=1280,1800', `--screenshot=${shot}`, `file://${page}`]);
    expect(s.status, s.stderr).toBe(0);
    const stats = await sharp(shot).stats();
    // Not blank: the pixels vary (text, tables, coloured lines).
    expect(Math.max(...stats.channels.map((c) => c.stdev))).toBeGreaterThan(20);
    expect(stats.isOpaque).toBe(true);
    // Only methods without diagnostics: no diagnostics chart (it used to fail the whole report).
    const sourceOnly = join(dir, 'source.html');
    const s2 = runCli(['report', out, '--methods', 'source', '--out', sourceOnly]);
    expect(s2.code, s2.stderr).toBe(0);
    expect(readFileSync(sourceOnly, 'utf8').match(/class="chart"/g)?.length).toBe(2);
  }, 300_000);

  it('--methods on a folder of several scenarios: each scenario shows the requested methods it has, and the count is of the runs shown', async () => {
    const page = join(mkdtempSync(join(tmpdir(), 'ctta-html-')), 'some.html');
    const r = runCli(['report', 'results', '--methods', 'bn,tent', '--out', page]);
    expect(r.code, r.stderr).toBe(0);
    const html = readFileSync(page, 'utf8');
    const { readResults, runName } = await import('../src/report/results.js');
    const all = await readResults(join(ROOT, 'results'));
    const shown = all.filter((run) => ['bn', 'tent'].includes(runName(run.header)));
    expect(shown.length).toBeLessThan(all.length);
    expect(html).toContain(`<p>${shown.length} runs of`);
    // A section for each scenario with one of the methods, none for the others (the continual-learning
    // scenarios of results/ have no bn or tent runs).
    const scenarios = [...new Set(all.map((run) => run.header.scenario))];
    const withThem = new Set(shown.map((run) => run.header.scenario));
    expect(scenarios.filter((sc) => !withThem.has(sc)).length).toBeGreaterThan(0);
    for (const sc of scenarios) expect(html.includes(`<h2 id="${sc}">`), sc).toBe(withThem.has(sc));
    // A method that no scenario has: one line naming the ones there are.
    const bad = runCli(['report', 'results', '--methods', 'source,bogus', '--out', page.replace('some', 'bad')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([expect.stringMatching(/no finished runs of method "bogus" in any scenario \(fix: choose from: .*tent/)]);
  }, 300_000);

  it('refuses an --out that is not .html, in one line', () => {
    const r = runCli(['report', 'results', '--out', join(tmpdir(), 'x.svg')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/--out .*x\.svg: the report is HTML/)]);
  });
});
