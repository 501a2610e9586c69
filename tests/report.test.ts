import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BatchRecord, RunHeader, RunSummary } from '../src/eval/records.js';
import { mergeResults } from '../src/report/merge.js';
import { plotRuns, renderPng, renderSvg, type PlotOptions } from '../src/report/plot.js';
import { listRunFiles, readResults, type FinishedRun } from '../src/report/results.js';
import { describe as stat, formatCell, formatCsv, formatMarkdown, summarize, summarizeDiagnostics, tQuantile975 } from '../src/report/table.js';
import { ResultWriter, runFile } from '../src/eval/result-writer.js';
import { tableCommand } from '../src/cli/commands/table.js';
import { plotCommand } from '../src/cli/commands/plot.js';
import { mergeCommand } from '../src/cli/commands/merge.js';
import { expectCttaError, runCommand } from './helpers.js';

// Synthetic sweep: scenario "toy" (3 domains of 100 images, 2 batches of 50 each) x methods
// source, tent x seeds 0-2, plus one online continual learning run ("toy-ocl", 3 tasks).
const DOMAINS = ['gauss', 'shot', 'fog'];
const MIB = 1024 * 1024;
/** Error (%) per domain, per seed. */
const ERRORS: Record<string, number[][]> = {
  source: [[40, 30, 20], [42, 30, 26], [44, 33, 20]],
  tent: [[30, 20, 10], [31, 22, 10], [32, 24, 10]],
};
const SPEED: Record<string, number[]> = { source: [1000, 1100, 1200], tent: [500, 600, 700] };
const PEAK: Record<string, number> = { source: 1 * MIB, tent: 2 * MIB };
const STATE: Record<string, number> = { source: 0, tent: 0.5 * MIB };

function header(scenario: string, method: string, seed: number, domains: string[], tasks: string[]): RunHeader {
  return {
    type: 'header', format: 'ctta-results/1', scenario, scenarioHash: `hash-${scenario}`, method, methodOptions: {}, seed,
    domains, tasks, backend: 'wasm', versions: { tfjs: '4.22.0' }, ctta: '0.1.0', node: 'v20', startedAt: '2025-01-01T00:00:00.000Z',
  };
}

function summary(n: number, errorPerDomain: Record<string, number>, extra: Partial<RunSummary>): RunSummary {
  const values = Object.values(errorPerDomain);
  return {
    type: 'summary', n, errorPerDomain, meanError: values.reduce((a, b) => a + b, 0) / values.length, onlineError: 0, ece: 0.05,
    peakTensorBytes: 0, methodStateBytes: 0, imagesPerSecond: 0, seconds: 1, leakedTensors: 0, ...extra,
  };
}

function writeRun(dir: string, records: (RunHeader | BatchRecord | RunSummary)[], name?: string): string {
  const h = records[0] as RunHeader;
  const folder = join(dir, h.scenario, h.method);
  mkdirSync(folder, { recursive: true });
  const file = join(folder, name ?? `seed-${h.seed}.jsonl`);
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

function cttaRecords(method: string, seed: number): (RunHeader | BatchRecord | RunSummary)[] {
  const errors = ERRORS[method]![seed]!;
  const batches: BatchRecord[] = [];
  DOMAINS.forEach((_, d) => {
    const correct = 100 - errors[d]!;
    for (const half of [0, 1]) {
      const i = batches.length;
      const c = half === 0 ? Math.ceil(correct / 2) : Math.floor(correct / 2);
      batches.push({ type: 'batch', i, start: i * 50, end: i * 50 + 50, task: 0, perDomain: [[d, 50, c]], predictMs: 1, adaptMs: 2, tensorBytes: 100, rss: 1000 });
    }
  });
  const errorPerDomain = Object.fromEntries(DOMAINS.map((d, k) => [d, errors[k]! / 100]));
  return [
    header('toy', method, seed, DOMAINS, []),
    ...batches,
    summary(300, errorPerDomain, { imagesPerSecond: SPEED[method]![seed]!, peakTensorBytes: PEAK[method]!, methodStateBytes: STATE[method]! }),
  ];
}

const MATRIX = [[0.9, 0, 0], [0.7, 0.8, 0], [0.6, 0.65, 0.85]];

function oclRecords(): (RunHeader | BatchRecord | RunSummary)[] {
  const batches: BatchRecord[] = [0, 1, 2].map((t) => ({
    type: 'batch', i: t, start: t * 50, end: t * 50 + 50, task: t, perDomain: [[0, 50, 40]], predictMs: 1, adaptMs: 2, tensorBytes: 100, rss: 1000,
  }));
  return [
    header('toy-ocl', 'er', 0, ['clean'], ['t0', 't1', 't2']),
    ...batches,
    summary(150, { clean: 0.2 }, {
      accuracyMatrix: MATRIX, finalAverageAccuracy: 0.7, averageIncrementalAccuracy: 0.78, forgetting: 0.225, bwt: -0.225,
      imagesPerSecond: 800, peakTensorBytes: 3 * MIB, methodStateBytes: 1.25 * MIB,
    }),
  ];
}

let root: string;
let full: string;
let runs: FinishedRun[];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'ctta-report-'));
  full = join(root, 'full');
  for (const method of ['tent', 'source']) for (const seed of [2, 0, 1]) writeRun(full, cttaRecords(method, seed));
  writeRun(full, oclRecords());
  // An unfinished run (still being written) and stray files: not results.
  writeRun(full, cttaRecords('source', 0).slice(0, 3), 'seed-3.jsonl.partial');
  writeFileSync(join(full, 'table.md'), 'not a run\n');
  writeFileSync(join(full, 'toy', 'notes.txt'), 'not a run\n');
  runs = await readResults(full);
});

describe('readResults', () => {
  it('reads finished runs only, sorted by scenario, method, seed', () => {
    expect(runs.map((r) => `${r.header.scenario}/${r.header.method}/${r.header.seed}`)).toEqual([
      'toy/source/0', 'toy/source/1', 'toy/source/2', 'toy/tent/0', 'toy/tent/1', 'toy/tent/2', 'toy-ocl/er/0',
    ]);
    expect(runs[0]!.batches).toHaveLength(6);
    expect(runs[0]!.summary.errorPerDomain.gauss).toBe(0.4);
    expect(runs[0]!.file).toBe(join(full, 'toy', 'source', 'seed-0.jsonl'));
  });

  it('reports a file without a summary, a corrupt line, a wrong seed and a missing directory', async () => {
    const dir = join(root, 'damaged');
    const noSummary = writeRun(dir, cttaRecords('source', 1).slice(0, 7));
    await expectCttaError(() => readResults(dir), /source[\\/]seed-1\.jsonl: line 7: no summary record.*fix: delete it and re-run: ctta run skips finished runs/);
    rmSync(noSummary);
    const lines = cttaRecords('tent', 0).map((r) => JSON.stringify(r));
    lines[2] = lines[2]!.slice(0, 30);
    writeFileSync(join(dir, 'toy', 'source', 'seed-0.jsonl'), lines.join('\n') + '\n');
    await expectCttaError(() => readResults(dir), /seed-0\.jsonl: line 3: not valid JSON.*fix: delete it and re-run/);
    writeRun(dir, cttaRecords('source', 0));
    const bad = cttaRecords('source', 1);
    (bad[bad.length - 1] as { meanError: unknown }).meanError = 'high';
    writeRun(dir, bad);
    await expectCttaError(() => readResults(dir), /seed-1\.jsonl: line 8: field "meanError": .*fix: delete it/);
    writeRun(dir, cttaRecords('source', 1), 'seed-2.jsonl');
    rmSync(join(dir, 'toy', 'source', 'seed-1.jsonl'));
    await expectCttaError(() => readResults(dir), /seed-2\.jsonl: line 1: header seed 1 does not match the file name/);
    await expectCttaError(() => readResults(join(root, 'nope')), /results directory not found: .*nope/);
  });
});

describe('table', () => {
  it('Student t quantiles and mean / std / 95% CI', () => {
    expect(tQuantile975(1)).toBe(12.7062);
    expect(tQuantile975(2)).toBe(4.3027);
    expect(tQuantile975(30)).toBe(2.0423);
    expect(tQuantile975(31)).toBe(1.96);
    const s = stat([40, 42, 44]);
    expect(s.mean).toBe(42);
    expect(s.std).toBeCloseTo(2, 12);
    expect(s.ci95).toBeCloseTo((4.3027 * 2) / Math.sqrt(3), 12);
    expect(stat([7])).toEqual({ n: 1, mean: 7, std: null, ci95: null });
  });

  it('one row per (scenario, method), source first; per-domain error as mean over seeds', () => {
    const rows = summarize(runs);
    expect(rows.map((r) => [r.scenario, r.method, r.kind, r.seeds])).toEqual([
      ['toy', 'source', 'ctta', [0, 1, 2]],
      ['toy', 'tent', 'ctta', [0, 1, 2]],
      ['toy-ocl', 'er', 'ocl', [0]],
    ]);
    const source = rows[0]!;
    expect(source.cells.map((c) => c.column)).toEqual(['gauss', 'shot', 'fog', 'mean', 'img/s', 'peak MiB', 'state MiB']);
    const cell = (row: typeof source, column: string) => row.cells.find((c) => c.column === column)!;
    // gauss 40, 42, 44: mean 42, std 2, CI t(0.975, 2) * 2 / sqrt 3
    expect(cell(source, 'gauss').stat!.mean).toBeCloseTo(42, 10);
    expect(cell(source, 'gauss').stat!.std).toBeCloseTo(2, 10);
    expect(cell(source, 'gauss').stat!.ci95).toBeCloseTo(4.96833, 5);
    // shot 30, 30, 33: std sqrt(3), so the CI is exactly t(0.975, 2)
    expect(cell(source, 'shot').stat!.ci95).toBeCloseTo(4.3027, 10);
    // fog 20, 26, 20: std sqrt(12)
    expect(cell(source, 'fog').stat!.std).toBeCloseTo(Math.sqrt(12), 10);
    // per-seed means 30, 32.667, 32.333
    expect(cell(source, 'mean').stat!.mean).toBeCloseTo((30 + 98 / 3 + 97 / 3) / 3, 10);
    expect(formatCell(cell(source, 'gauss'))).toBe('42.0 ± 5.0');
    expect(formatCell(cell(source, 'gauss'), 'std')).toBe('42.0 ± 2.0');
    expect(formatCell(cell(source, 'img/s'))).toBe('1100 ± 248');
    expect(formatCell(cell(rows[1]!, 'fog'))).toBe('10.0 ± 0.0');
    expect(formatCell(cell(rows[1]!, 'state MiB'), 'none')).toBe('0.50');
    expect(summarize(runs, { scenario: 'toy', methods: ['tent', 'source'] }).map((r) => r.method)).toEqual(['tent', 'source']);
  });

  it('OCL runs: the OCL layout (metrics, final accuracy per task, state); legacy forgetting from the matrix of an older file', () => {
    const [row] = summarize(runs, { scenario: 'toy-ocl' });
    // The summary predates legacyForgetting: (0.9 - 0.6 + 0.8 - 0.65 + 0) / 3 = 15%.
    expect(row!.cells.map((c) => `${c.column}=${formatCell(c)}`)).toEqual([
      'avg acc=70.0', 'forgetting=22.5', 'legacy forgetting=15.0', 'avg inc acc=78.0', 'BWT=-22.5', 't0=60.0', 't1=65.0', 't2=85.0', 'state MiB=1.25',
    ]);
    expect(row!.cells.map((c) => c.task)).toEqual([undefined, undefined, undefined, undefined, undefined, 0, 1, 2, undefined]);
    // --layout ctta: its online error per domain, as for CTTA runs.
    const [ctta] = summarize(runs, { scenario: 'toy-ocl', layout: 'ctta' });
    expect(ctta!.kind).toBe('ctta');
    expect(ctta!.cells.map((c) => `${c.column}=${formatCell(c)}`)).toEqual(['clean=20.0', 'mean=20.0', 'img/s=800', 'peak MiB=3.00', 'state MiB=1.25']);
    expect(summarize(runs, { scenario: 'toy', layout: 'auto' })).toEqual(summarize(runs, { scenario: 'toy', layout: 'ctta' }));
  });

  it('unknown scenario or method: an error naming the choices', async () => {
    await expectCttaError(() => summarize(runs, { scenario: 'toi' }), /no finished runs of scenario "toi".*fix: pass one of: toy, toy-ocl/);
    await expectCttaError(() => summarize(runs, { scenario: 'toy', methods: ['cotta'] }), /method "cotta" in scenario toy.*choose from: source, tent/);
  });

  it('markdown and CSV, exactly (2 seeds: mean ± std)', () => {
    const rows = summarize(runs.filter((r) => r.header.scenario === 'toy' && r.header.seed < 2));
    expect(formatMarkdown(rows)).toBe(MARKDOWN);
    expect(formatCsv(rows, { rounded: true })).toBe(CSV);
    // By default unrounded: source's gauss errors are 40 and 42 over the two seeds.
    const unrounded = parseCsv(formatCsv(rows));
    const column = (name: string) => unrounded[0]!.indexOf(name);
    expect([unrounded[1]![column('gauss')], unrounded[1]![column('gauss std')]]).toEqual(['41', String(Math.SQRT2)]);
    const ocl = formatMarkdown(summarize(runs, { scenario: 'toy-ocl' }));
    expect(ocl).toBe(OCL_MARKDOWN);
  });
});

const MARKDOWN = `### toy: error (%) per domain, mean over seeds

| method | seeds |      gauss |       shot |        fog |       mean |     img/s |    peak MiB |   state MiB |
| :----- | ----: | ---------: | ---------: | ---------: | ---------: | --------: | ----------: | ----------: |
| source |     2 | 41.0 ± 1.4 | 30.0 ± 0.0 | 23.0 ± 4.2 | 31.3 ± 1.9 | 1050 ± 71 | 1.00 ± 0.00 | 0.00 ± 0.00 |
| tent   |     2 | 30.5 ± 0.7 | 21.0 ± 1.4 | 10.0 ± 0.0 | 20.5 ± 0.7 |  550 ± 71 | 2.00 ± 0.00 | 0.50 ± 0.00 |

± is the standard deviation over seeds.
`;

const CSV = `scenario,kind,method,seeds,gauss,gauss std,shot,shot std,fog,fog std,mean,mean std,img/s,img/s std,peak MiB,peak MiB std,state MiB,state MiB std
toy,ctta,source,2,41.0,1.4,30.0,0.0,23.0,4.2,31.3,1.9,1050,71,1.00,0.00,0.00,0.00
toy,ctta,tent,2,30.5,0.7,21.0,1.4,10.0,0.0,20.5,0.7,550,71,2.00,0.00,0.50,0.00
`;

const OCL_MARKDOWN = `### toy-ocl: accuracy-matrix metrics (%) and accuracy (%) per task after the last task, mean over seeds

| method | seeds | avg acc | forgetting | legacy forgetting | avg inc acc |   BWT |   t0 |   t1 |   t2 | state MiB |
| :----- | ----: | ------: | ---------: | ----------------: | ----------: | ----: | ---: | ---: | ---: | --------: |
| er     |     1 |    70.0 |       22.5 |              15.0 |        78.0 | -22.5 | 60.0 | 65.0 | 85.0 |      1.25 |

avg acc: final average accuracy over all tasks; forgetting: best earlier accuracy minus final, mean over all tasks but the last; legacy forgetting: as Mai et al.'s OCL code (used by OnPro, OCM) computes it, best over all evaluations minus final, mean over all tasks; avg inc acc: average incremental accuracy; BWT: final minus just-learned accuracy, mean over all tasks but the last.
`;

describe('merge', () => {
  it('joins shards into the union, and the table is byte-identical to the unsharded one', async () => {
    const a = join(root, 'shard-a');
    const b = join(root, 'shard-b');
    for (const f of await listRunFiles(full)) {
      const inA = f.seed === 0 || (f.method === 'source' && f.seed === 1);
      const inB = !inA || f.relative === 'toy/source/seed-0.jsonl'; // one run in both shards, byte-identical
      for (const [dir, take] of [[a, inA], [b, inB]] as const) {
        if (!take) continue;
        mkdirSync(join(dir, f.scenario, f.method), { recursive: true });
        cpSync(f.file, join(dir, f.relative));
      }
    }
    writeRun(b, cttaRecords('tent', 1).slice(0, 3), 'seed-1.jsonl.partial'); // ignored
    const out = join(root, 'merged');
    expect(await mergeResults([a, b], out)).toEqual({ out, runs: 7, copied: 7, identical: 1 });
    const rel = async (d: string) => (await listRunFiles(d)).map((f) => f.relative);
    expect(await rel(out)).toEqual(await rel(full));
    for (const f of await listRunFiles(full)) expect(readFileSync(join(out, f.relative))).toEqual(readFileSync(f.file));
    const merged = await readResults(out);
    expect(formatMarkdown(summarize(merged))).toBe(formatMarkdown(summarize(runs)));
    expect(formatCsv(summarize(merged))).toBe(formatCsv(summarize(runs)));
    // Merging again into the same directory changes nothing.
    expect(await mergeResults([a, b], out)).toEqual({ out, runs: 7, copied: 0, identical: 8 });
    expect(readdirSync(join(out, 'toy', 'tent')).sort()).toEqual(['seed-0.jsonl', 'seed-1.jsonl', 'seed-2.jsonl']);
  });

  it('two different files for the same run: an error naming both, and nothing written', async () => {
    const c = join(root, 'shard-c');
    const records = cttaRecords('source', 0);
    (records[records.length - 1] as RunSummary).imagesPerSecond = 999;
    writeRun(c, records);
    const out = join(root, 'conflict');
    await expectCttaError(
      () => mergeResults([join(root, 'shard-a'), c], out),
      /shard-a[\\/]toy[\\/]source[\\/]seed-0\.jsonl and .*shard-c[\\/]toy[\\/]source[\\/]seed-0\.jsonl are different results of the same run/,
    );
    expect(existsSync(out)).toBe(false);
  });
});

describe('plots', () => {
  const count = (svg: string, what: string) => svg.split(what).length - 1;

  it('online error: one line per method, domain boundaries and names; PNG via sharp', async () => {
    const spec = plotRuns(runs, { scenario: 'toy', kind: 'online' });
    const svg = await renderSvg(spec);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(count(svg, 'aria-roledescription="line mark"')).toBe(2);
    expect(count(svg, 'aria-roledescription="rule mark"')).toBe(2); // shot and fog start
    for (const name of ['source', 'tent', 'gauss', 'shot', 'fog']) expect(svg).toContain(`>${name}</text>`);
    const png = await renderPng(svg);
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(600);
  });

  it('online error is windowed by default (drift shows), cumulative on request, with a seed band and distinct dashes', async () => {
    type Point = { method: string; position: number; error: number; low: number; high: number };
    const online = (o: Partial<PlotOptions>) => {
      const spec = plotRuns(runs, { scenario: 'toy', kind: 'online', ...o }) as unknown as { layer: { name?: string; data?: { values: Point[] }; encoding?: Record<string, unknown> }[]; title: { subtitle: string[] } };
      const layer = spec.layer.find((l) => l.name === 'online')!;
      const last = layer.data!.values.filter((p) => p.method === 'source').at(-1)!;
      return { spec, layer, last };
    };
    // Hand-computed from the fixture: the last batch of source (fog, second half) has 10, 13, 10
    // wrong of 50 over the seeds; all of source's stream has 90, 98, 97 wrong of 300.
    const windowed = online({});
    expect(windowed.last.position).toBe(300);
    expect(windowed.last.error).toBeCloseTo(22, 10);
    expect([windowed.last.low, windowed.last.high]).toEqual([20, 26]);
    expect(windowed.spec.title.subtitle[0]).toMatch(/last 50 images/);
    expect(online({ curve: 'cumulative' }).last.error).toBeCloseTo((30 + 98 / 3 + 97 / 3) / 3, 10);
    // Three batches (150 images): 35, 41, 37 wrong of 150.
    expect(online({ window: 150 }).last.error).toBeCloseTo((35 + 41 + 37) / 450 * 100, 10);
    expect(Object.keys(windowed.layer.encoding!)).toEqual(expect.arrayContaining(['color', 'strokeDash', 'shape']));
    const svg = await renderSvg(windowed.spec as unknown as Parameters<typeof renderSvg>[0]);
    expect(count(svg, 'aria-roledescription="area mark"')).toBe(2); // a band per method (3 seeds each)
    expect(svg).toContain('stroke-dasharray="1,0"'); // the first method solid,
    expect(svg).toContain('stroke-dasharray="4,2"'); // the second dashed
  });

  it('per-domain bars (with spread rules) and the OCL accuracy matrix', async () => {
    const bars = await renderSvg(plotRuns(runs, { scenario: 'toy', kind: 'domains' }));
    expect(bars.startsWith('<svg')).toBe(true);
    expect(count(bars, 'aria-roledescription="bar"')).toBe(2 * 4); // 2 methods x (3 domains + mean)
    const matrix = await renderSvg(plotRuns(runs, { scenario: 'toy-ocl', kind: 'matrix' }));
    expect(count(matrix, 'aria-roledescription="rect mark"')).toBe(9);
    expect(matrix).toContain('>85.0</text>');
    await expectCttaError(() => plotRuns(runs, { scenario: 'toy', kind: 'matrix' }), /no accuracy matrix.*--kind online/);
    await expectCttaError(() => plotRuns(runs, { kind: 'online' }), /2 scenarios.*--scenario with one of: toy, toy-ocl/);
  });
});


describe('CLI commands', () => {
  it('table, plot and merge write what the library gives; bad options fail with a message', async () => {
    const md = await runCommand(tableCommand(), [full, '--scenario', 'toy']);
    expect(md.out).toBe(formatMarkdown(summarize(runs, { scenario: 'toy' })));
    const csvFile = join(root, 'cli', 'table.csv');
    await runCommand(tableCommand(), [full, '--out', csvFile]);
    expect(readFileSync(csvFile, 'utf8')).toBe(formatCsv(summarize(runs)));
    const png = join(root, 'cli', 'domains.png');
    await runCommand(plotCommand(), [full, '--scenario', 'toy', '--kind', 'domains', '--out', png]);
    expect((await sharp(png).metadata()).format).toBe('png');
    await expect(runCommand(plotCommand(), [full, '--out', join(root, 'x.gif')])).rejects.toThrow(/--out must end in .svg or .png/);
    await expect(runCommand(tableCommand(), [full, '--format', 'xls'])).rejects.toThrow(/--format must be one of md, csv/);
    await expectCttaError(() => runCommand(tableCommand(), [join(root, 'cli')]), /no finished runs in .*cli.*fix: pass the --out directory/);
    const merged = await runCommand(mergeCommand(), [join(root, 'shard-a'), join(root, 'shard-b'), '--out', join(root, 'cli-merged'), '--json']);
    expect(JSON.parse(merged.out)).toMatchObject({ runs: 7, copied: 7, identical: 1 });
  });
});

// Per-batch diagnostics, written by the ResultWriter as the runner does: scenario "toy" with
// source (2 seeds, no diagnostics), eata (2 seeds: selected, reliable), sar (1 seed: reliable,
// recovered). Means per run over its 6 batches, then over seeds:
//   eata selected: seed 0 10..60 -> 35, seed 1 20..70 -> 45: 40 ± std 7.07; reliable 1,1,1,0,0,0 -> 0.5
//   sar reliable 1,1,1,1,0,0 -> 0.667; recovered 0,0,0,0,1,0 -> 0.167
const DIAGNOSTICS: Record<string, ((k: number, seed: number) => Record<string, number>) | undefined> = {
  source: undefined,
  eata: (k, seed) => ({ selected: 10 * (k + 1) + 10 * seed, reliable: k < 3 ? 1 : 0 }),
  sar: (k) => ({ reliable: k < 4 ? 1 : 0, recovered: k === 4 ? 1 : 0 }),
};

function writeWithDiagnostics(dir: string, method: string, seed: number): void {
  const [h, ...rest] = cttaRecords(method === 'source' ? 'source' : 'tent', seed);
  const writer = new ResultWriter(runFile(dir, 'toy', method, seed), { ...(h as RunHeader), method });
  const diagnostics = DIAGNOSTICS[method];
  for (const b of rest.slice(0, -1) as BatchRecord[]) writer.batch(diagnostics ? { ...b, diagnostics: diagnostics(b.i, seed) } : b);
  writer.finish(rest[rest.length - 1] as RunSummary);
}

/** RFC 4180 enough for our tables: quoted fields with doubled quotes, commas, newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let k = 0; k < text.length; k++) {
    const c = text[k]!;
    if (quoted) {
      if (c === '"' && text[k + 1] === '"') (field += '"'), k++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\n') row.push(field), rows.push(row), (row = []), (field = '');
    else field += c;
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (field !== '' || row.length) row.push(field), rows.push(row);
  return rows;
}

describe('diagnostics', () => {
  let dir: string;
  let diag: FinishedRun[];

  beforeAll(async () => {
    dir = join(root, 'diagnostics');
    writeWithDiagnostics(dir, 'sar', 0);
    for (const seed of [0, 1]) for (const method of ['source', 'eata']) writeWithDiagnostics(dir, method, seed);
    diag = await readResults(dir);
  });

  it('table: mean per batch over the run, then over seeds; "-" for a run without diagnostics', () => {
    const rows = summarizeDiagnostics(diag);
    expect(rows.map((r) => [r.method, r.kind, r.seeds])).toEqual([['source', 'diagnostics', [0, 1]], ['eata', 'diagnostics', [0, 1]], ['sar', 'diagnostics', [0]]]);
    expect(rows[0]!.cells.map((c) => c.column)).toEqual(['batches', 'selected', 'reliable', 'recovered']);
    const cell = (r: number, column: string) => rows[r]!.cells.find((c) => c.column === column)!;
    expect(cell(1, 'selected').stat!.mean).toBeCloseTo(40, 12);
    expect(cell(1, 'selected').stat!.std).toBeCloseTo(Math.sqrt(50), 12);
    expect(cell(1, 'reliable').stat!.mean).toBeCloseTo(0.5, 12);
    expect(cell(2, 'reliable').stat!.mean).toBeCloseTo(4 / 6, 12);
    expect(cell(2, 'recovered').stat!.mean).toBeCloseTo(1 / 6, 12);
    expect(cell(0, 'batches').stat!.mean).toBe(6);
    for (const column of ['selected', 'reliable', 'recovered']) expect(cell(0, column).stat).toBeNull();
    expect(cell(2, 'selected').stat).toBeNull();
    expect(formatMarkdown(rows)).toBe(DIAGNOSTICS_MARKDOWN);
    // Same filters as the error table; runs without diagnostics anywhere give no rows.
    expect(summarizeDiagnostics(diag, { methods: ['sar', 'eata'] }).map((r) => r.method)).toEqual(['sar', 'eata']);
    expect(summarizeDiagnostics(runs)).toEqual([]);
  });

  it('CSV of the diagnostics table parses, one column per diagnostic (+ std)', () => {
    const table = parseCsv(formatCsv(summarizeDiagnostics(diag), { rounded: true }));
    // Unrounded, EATA's selected std (two seeds 10 apart) is sqrt(50).
    const exact = parseCsv(formatCsv(summarizeDiagnostics(diag)));
    expect(exact[2]![exact[0]!.indexOf('selected std')]).toBe(String(Math.sqrt(50)));
    expect(table[0]).toEqual([
      'scenario', 'kind', 'method', 'seeds', 'batches', 'batches std', 'selected', 'selected std', 'reliable', 'reliable std', 'recovered', 'recovered std',
    ]);
    expect(table.slice(1)).toEqual([
      ['toy', 'diagnostics', 'source', '2', '6', '0', '', '', '', '', '', ''],
      ['toy', 'diagnostics', 'eata', '2', '6', '0', '40.0', '7.1', '0.500', '0.000', '', ''],
      ['toy', 'diagnostics', 'sar', '1', '6', '', '', '', '0.667', '', '0.167', ''],
    ]);
  });

  it('plot: one panel per diagnostic, one line per method reporting it, domain boundaries; valid SVG', async () => {
    const svg = await renderSvg(plotRuns(diag, { kind: 'diagnostics' }));
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    const count = (what: string) => svg.split(what).length - 1;
    for (const name of ['selected', 'reliable', 'recovered', 'eata', 'sar', 'gauss', 'shot', 'fog']) expect(svg).toContain(`>${name}</text>`);
    expect(count('aria-roledescription="line mark"')).toBe(4); // selected: eata; reliable: eata, sar; recovered: sar
    expect(count('aria-roledescription="rule mark"')).toBe(3 * 2); // shot and fog start, in each panel
    expect(svg).not.toContain('>source</text>'); // nothing to draw for it
    // A strict XML parser (librsvg, via sharp) takes it.
    expect((await sharp(Buffer.from(svg)).metadata()).format).toBe('svg');
    expect((await sharp(await renderPng(svg)).metadata()).height).toBeGreaterThan(400);
    await expectCttaError(() => plotRuns(runs, { scenario: 'toy', kind: 'diagnostics' }), /scenario toy recorded no per-batch diagnostics.*eata, sar, vida, cotta/);
  });

  it('CLI: table --diagnostics (md, csv) and plot --kind diagnostics; none recorded: exit-2 error naming the dir', async () => {
    const md = await runCommand(tableCommand(), [dir, '--diagnostics']);
    expect(md.out).toBe(DIAGNOSTICS_MARKDOWN);
    const csv = join(root, 'cli-diag', 'diag.csv');
    await runCommand(tableCommand(), [dir, '--diagnostics', '--out', csv, '--methods', 'eata,sar']);
    expect(readFileSync(csv, 'utf8')).toBe(formatCsv(summarizeDiagnostics(diag, { methods: ['eata', 'sar'] })));
    const svg = join(root, 'cli-diag', 'diag.svg');
    await runCommand(plotCommand(), [dir, '--kind', 'diagnostics', '--out', svg]);
    expect(readFileSync(svg, 'utf8')).toContain('>recovered</text>');
    await expectCttaError(() => runCommand(tableCommand(), [full, '--diagnostics']), /^no diagnostics recorded in .*full \(fix: .*eata, sar, vida, cotta/);
    await expectCttaError(() => runCommand(tableCommand(), [dir, '--diagnostics', '--methods', 'source']), /no diagnostics recorded in .*diagnostics \(methods source\)/);
    const help = tableCommand().helpInformation() + plotCommand().helpInformation();
    expect(help).toContain('--diagnostics');
    expect(help).toContain('diagnostics');
  });
});

const DIAGNOSTICS_MARKDOWN = `### toy: diagnostics, mean per batch over the run, mean over seeds

| method | seeds | batches |   selected |      reliable | recovered |
| :----- | ----: | ------: | ---------: | ------------: | --------: |
| source |     2 |   6 ± 0 |          - |             - |         - |
| eata   |     2 |   6 ± 0 | 40.0 ± 7.1 | 0.500 ± 0.000 |         - |
| sar    |     1 |       6 |          - |         0.667 |     0.167 |

± is the standard deviation over seeds.
`;
