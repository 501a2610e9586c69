/**
 * Plots of result files as Vega-Lite specs, rendered to SVG in Node (vega's 'none' renderer: no
 * canvas, no fonts needed; text widths are estimated) and to PNG with sharp.
 *
 * - online:  error over the stream per method: over a sliding window of images (default; drift
 *            shows) or cumulative, mean over seeds with a min-max band, distinct dashes and
 *            markers, a dashed rule and the domain's name (above the plot) at each new domain;
 * - domains: grouped bars of the error per domain (final accuracy per task for OCL runs);
 * - matrix:  the OCL accuracy matrix as a heatmap, one panel per method (mean over seeds), the
 *            tasks not yet trained on (j > i) greyed;
 * - diagnostics: one panel per per-batch diagnostic the methods reported, its value per batch
 *            (mean over seeds) over the stream, domain boundaries marked as in 'online'.
 */
import sharp from 'sharp';
import type { TopLevelSpec } from 'vega-lite';
import { CttaError } from '../errors.js';
import type { BatchRecord } from '../eval/records.js';
import { compareStrings, runName, type FinishedRun } from './results.js';
import { describe, DIAGNOSTIC_METHODS, diagnosticNames, fixed, orderMethods, summarize, type Spread } from './table.js';

export type PlotKind = 'online' | 'domains' | 'matrix' | 'diagnostics';
export const PLOT_KINDS: readonly PlotKind[] = ['online', 'domains', 'matrix', 'diagnostics'];

export interface PlotOptions {
  kind: PlotKind;
  /** Required when the runs hold more than one scenario. */
  scenario?: string;
  /** Only these methods, in this order (default: all, `source` first, then alphabetical). */
  methods?: string[];
  /** Error bars of 'domains' (as in the tables: std for 2 seeds, 95% CI for more). */
  spread?: Spread;
  /** Points per curve at most in 'online' and 'diagnostics' (SVGs stay small). */
  maxPoints?: number;
  /** 'online': the error over a sliding window of images (default) or over everything so far. */
  curve?: OnlineCurve;
  /** 'online', windowed: the window in images (default: 1/100 of the stream, at least a batch). */
  window?: number;
}

export type OnlineCurve = 'windowed' | 'cumulative';
export const ONLINE_CURVES: readonly OnlineCurve[] = ['windowed', 'cumulative'];

// The specs are built as plain objects (checked by vega-lite's compile, and by the tests) and cast
// once: spelling vega-lite's channel unions out in TypeScript would triple this file.
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
// A generic family: the SVG names no font that might be missing, and no font file is needed to
// lay it out (vega estimates text widths without a canvas).
const CONFIG = { font: 'sans-serif', view: { stroke: '#ddd' } };
/** Beyond this many domain changes (mixed, gradual streams) the rules would be a grey smear. */
const MAX_BOUNDARIES = 60;

export function plotRuns(runs: FinishedRun[], options: PlotOptions): TopLevelSpec {
  const scenario = pickScenario(runs, options.scenario);
  const ofScenario = runs.filter((r) => r.header.scenario === scenario);
  const methods = orderMethods(ofScenario.map((r) => runName(r.header)), options.methods, scenario);
  const byMethod = methods.map((m) => ofScenario.filter((r) => runName(r.header) === m).sort((a, b) => a.header.seed - b.header.seed));
  switch (options.kind) {
    case 'online':
      // Fewer points than 'diagnostics': each carries a marker.
      return onlineSpec(scenario, methods, byMethod, { maxPoints: options.maxPoints ?? 150, curve: options.curve ?? 'windowed', window: options.window });
    case 'domains':
      return domainsSpec(scenario, methods, ofScenario, options.spread ?? 'auto');
    case 'matrix':
      return matrixSpec(scenario, methods, byMethod);
    case 'diagnostics':
      return diagnosticsSpec(scenario, methods, byMethod, options.maxPoints ?? 500);
    default:
      throw new CttaError(`unknown plot kind "${String(options.kind)}"`, { fix: `use one of ${PLOT_KINDS.join(', ')}` });
  }
}

function pickScenario(runs: FinishedRun[], wanted: string | undefined): string {
  const scenarios = [...new Set(runs.map((r) => r.header.scenario))].sort(compareStrings);
  if (scenarios.length === 0) throw new CttaError('no finished runs to plot', { fix: 'run `ctta run` first, or pass its --out directory' });
  if (wanted !== undefined) {
    if (!scenarios.includes(wanted)) throw new CttaError(`no finished runs of scenario "${wanted}"`, { fix: `pass one of: ${scenarios.join(', ')}` });
    return wanted;
  }
  if (scenarios.length > 1) {
    throw new CttaError(`the results hold ${scenarios.length} scenarios and a plot shows one`, { fix: `pass --scenario with one of: ${scenarios.join(', ')}` });
  }
  return scenarios[0]!;
}

function sortedBatches(run: FinishedRun): BatchRecord[] {
  return [...run.batches].sort((a, b) => a.i - b.i);
}

/** Running error (%) after each batch of one run: the error over everything seen so far. */
function runningError(batches: BatchRecord[]): number[] {
  let wrong = 0;
  let seen = 0;
  return batches.map((b) => {
    for (const [, images, correct] of b.perDomain) {
      wrong += images - correct;
      seen += images;
    }
    return seen === 0 ? 0 : (100 * wrong) / seen;
  });
}

/**
 * Windowed error (%) after each batch: the error over the batches whose images make up the last
 * `window` images (at least the batch itself). Unlike the running error it shows drift: a
 * domain that is hard now is not averaged away by the easy ones before it.
 */
function windowedError(batches: BatchRecord[], window: number): number[] {
  const wrong = batches.map((b) => b.perDomain.reduce((w, [, images, correct]) => w + images - correct, 0));
  const size = batches.map((b) => b.end - b.start);
  let first = 0;
  let sumWrong = 0;
  let sumSize = 0;
  return batches.map((_, k) => {
    sumWrong += wrong[k]!;
    sumSize += size[k]!;
    while (first < k && sumSize - size[first]! >= window) {
      sumWrong -= wrong[first]!;
      sumSize -= size[first]!;
      first++;
    }
    return sumSize === 0 ? 0 : (100 * sumWrong) / sumSize;
  });
}

/** The default window: 1/100 of the stream, at least one batch (2,000-image domains get ~7 points' worth). */
function defaultWindow(batches: BatchRecord[]): number {
  const images = batches.length === 0 ? 0 : batches[batches.length - 1]!.end - batches[0]!.start;
  const batch = batches[0] ? batches[0].end - batches[0].start : 1;
  return Math.max(batch, Math.round(images / 100));
}

/** The batch's domain: the one with most images in it (ties: the lower index). */
function mainDomain(b: BatchRecord): number | undefined {
  let best: [number, number, number] | undefined;
  for (const d of b.perDomain) if (!best || d[1] > best[1] || (d[1] === best[1] && d[0] < best[0])) best = d;
  return best?.[0];
}

function onlineSpec(scenario: string, methods: string[], byMethod: FinishedRun[][], o: { maxPoints: number; curve: OnlineCurve; window?: number }): TopLevelSpec {
  const points: { method: string; position: number; error: number; low: number; high: number }[] = [];
  const window = o.window ?? defaultWindow(sortedBatches(byMethod[0]![0]!));
  const seeds = new Set<number>();
  methods.forEach((method, m) => {
    const runs = byMethod[m]!;
    seeds.add(runs.length);
    const batches = runs.map(sortedBatches);
    const curves = batches.map((b) => (o.curve === 'cumulative' ? runningError(b) : windowedError(b, window)));
    // Seeds of one scenario share batch positions; average over the batches all of them have.
    const length = Math.min(...curves.map((c) => c.length));
    const step = Math.max(1, Math.ceil(length / Math.max(2, o.maxPoints)));
    for (let k = 0; k < length; k++) {
      if (k !== length - 1 && k % step !== 0) continue;
      const values = curves.map((c) => c[k]!);
      points.push({ method, position: batches[0]![k]!.end, error: describe(values).mean, low: Math.min(...values), high: Math.max(...values) });
    }
  });
  const several = [...seeds].some((n) => n > 1);
  const x = { field: 'position', type: 'quantitative', title: 'images seen', scale: { nice: false } };
  const byMethodEncoding = { field: 'method', type: 'nominal', sort: methods, title: 'method' };
  const layers: Record<string, unknown>[] = [
    ...boundaryLayers(byMethod[0]![0]!, true),
    ...(several
      ? [{
          name: 'seedBand',
          data: { values: points },
          mark: { type: 'area', opacity: 0.15, clip: true },
          encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color: byMethodEncoding },
        }]
      : []),
    {
      name: 'online',
      data: { values: points },
      // Dashes and markers as well as colours: near-equal methods stay distinguishable, also in grey.
      mark: { type: 'line', strokeWidth: 1.5, clip: true, point: { size: 14, filled: true } },
      encoding: {
        x,
        y: { field: 'error', type: 'quantitative', title: o.curve === 'cumulative' ? 'cumulative error (%)' : `error over the last ${window} images (%)` },
        color: byMethodEncoding,
        strokeDash: byMethodEncoding,
        shape: byMethodEncoding,
      },
    },
  ];
  const what = o.curve === 'cumulative'
    ? 'each point: the error over all images seen so far'
    : `each point: the error over the last ${window} images (--window), so drift shows`;
  return {
    $schema: SCHEMA,
    title: { text: `${scenario}: ${o.curve === 'cumulative' ? 'cumulative' : 'windowed'} error over the stream`, subtitle: [what, `line: ${several ? 'mean over seeds, band: min to max over seeds' : 'one seed'}; dashed rules: a new domain`], offset: 10, anchor: 'start' },
    width: 640,
    height: 320,
    background: 'white',
    config: { ...CONFIG, legend: { symbolOpacity: 1 } },
    layer: layers,
  } as unknown as TopLevelSpec;
}

/**
 * A dashed rule where the stream enters a new domain (and the domain's name, with `names`), from
 * one run (seeds and methods of a scenario share the stream); none for streams that change domain
 * too often to show.
 */
function boundaryLayers(run: FinishedRun, names: boolean): Record<string, unknown>[] {
  const domains = run.header.domains;
  const starts: { position: number; domain: string }[] = [];
  let previous: number | undefined;
  for (const b of sortedBatches(run)) {
    const d = mainDomain(b);
    if (d === undefined || d === previous) continue;
    starts.push({ position: b.start, domain: domains[d] ?? `domain ${d}` });
    previous = d;
  }
  if (starts.length === 0 || starts.length > MAX_BOUNDARIES) return [];
  const layers: Record<string, unknown>[] = [
    {
      name: 'boundaries',
      data: { values: starts.filter((s) => s.position > 0) },
      mark: { type: 'rule', color: '#999', strokeDash: [3, 3], strokeWidth: 1 },
      encoding: { x: { field: 'position', type: 'quantitative' } },
    },
  ];
  if (names) {
    layers.push({
      name: 'domainNames',
      data: { values: starts },
      // Above the plot area, slanted: labels never hide a curve.
      mark: { type: 'text', angle: -35, align: 'left', baseline: 'bottom', dx: 2, dy: -4, fontSize: 9, color: '#555' },
      encoding: { x: { field: 'position', type: 'quantitative' }, y: { value: 0 }, text: { field: 'domain', type: 'nominal' } },
    });
  }
  return layers;
}

/**
 * One panel per diagnostic (stacked, sharing the x axis and the colours): its value per batch,
 * mean over the seeds that report it at that batch; beyond maxPoints batches, means over
 * consecutive windows (per-batch values are noisy: picking every k-th batch would alias).
 */
function diagnosticsSpec(scenario: string, methods: string[], byMethod: FinishedRun[][], maxPoints: number): TopLevelSpec {
  const names = diagnosticNames(byMethod.flat());
  if (names.length === 0) {
    throw new CttaError(`the runs of scenario ${scenario} recorded no per-batch diagnostics`, {
      fix: `only methods that report them record them (${DIAGNOSTIC_METHODS.join(', ')}): run one of those with this ctta, or use --kind online`,
    });
  }
  const points: { diagnostic: string; method: string; position: number; value: number }[] = [];
  methods.forEach((method, m) => {
    const batches = byMethod[m]!.map(sortedBatches);
    const length = Math.min(...batches.map((b) => b.length));
    const window = Math.max(1, Math.ceil(length / Math.max(2, maxPoints)));
    for (const name of names) {
      for (let k0 = 0; k0 < length; k0 += window) {
        const k1 = Math.min(length, k0 + window);
        const values: number[] = [];
        for (const seed of batches) for (let k = k0; k < k1; k++) if (seed[k]!.diagnostics?.[name] !== undefined) values.push(seed[k]!.diagnostics![name]!);
        if (values.length > 0) points.push({ diagnostic: name, method, position: batches[0]![k1 - 1]!.end, value: describe(values).mean });
      }
    }
  });
  const drawn = methods.filter((m) => points.some((p) => p.method === m));
  return {
    $schema: SCHEMA,
    title: `${scenario}: per-batch diagnostics, mean over seeds`,
    background: 'white',
    config: CONFIG,
    resolve: { scale: { x: 'shared', color: 'shared' } },
    vconcat: names.map((name, k) => ({
      title: { text: name, anchor: 'start', fontSize: 12 },
      width: 640,
      height: 140,
      layer: [
        // Domain names once, in the top panel.
        ...boundaryLayers(byMethod[0]![0]!, k === 0),
        diagnosticLine(name, points.filter((p) => p.diagnostic === name), drawn, k === names.length - 1),
      ],
    })),
  } as unknown as TopLevelSpec;
}

function diagnosticLine(name: string, values: { value: number }[], methods: string[], xTitle: boolean): Record<string, unknown> {
  const lo = Math.min(...values.map((p) => p.value));
  const hi = Math.max(...values.map((p) => p.value));
  // A constant (a 0/1 flag never raised) would give vega an empty y domain and a single tick.
  const scale = lo === hi ? { scale: { domain: [Math.min(0, lo), Math.max(1, hi)] } } : {};
  return {
    name: `diagnostic_${name}`,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.2, clip: true },
    encoding: {
      x: { field: 'position', type: 'quantitative', title: xTitle ? 'images seen' : null, scale: { nice: false } },
      y: { field: 'value', type: 'quantitative', title: null, ...scale }, // the panel's title names it
      color: { field: 'method', type: 'nominal', sort: methods, title: 'method' },
    },
  };
}

function domainsSpec(scenario: string, methods: string[], runs: FinishedRun[], spread: Spread): TopLevelSpec {
  const rows = summarize(runs, { scenario, methods });
  const kind = rows[0]!.kind;
  // CTTA: the domain columns and their mean (everything before the resource columns); OCL: the
  // final accuracy per task and their mean, the final average accuracy.
  const cells = rows[0]!.cells;
  const columns =
    kind === 'ctta'
      ? cells.slice(0, cells.findIndex((c) => c.column === 'img/s')).map((c) => c.column)
      : [...cells.filter((c) => c.task !== undefined).map((c) => c.column), 'avg acc'];
  const values: { method: string; column: string; value: number; low: number | null; high: number | null }[] = [];
  for (const row of rows) {
    for (const cell of row.cells) {
      if (!columns.includes(cell.column) || !cell.stat) continue;
      const s = cell.stat;
      const half = spread === 'none' || s.n < 2 ? null : spread === 'std' || (spread === 'auto' && s.n === 2) ? s.std : s.ci95;
      values.push({ method: row.method, column: cell.column, value: s.mean, low: half === null ? null : s.mean - half, high: half === null ? null : s.mean + half });
    }
  }
  const what = kind === 'ctta' ? 'error (%)' : 'final accuracy (%)';
  const x = { field: 'column', type: 'nominal', sort: columns, title: kind === 'ctta' ? 'domain' : 'task', axis: { labelAngle: -40 } };
  const xOffset = { field: 'method', type: 'nominal', sort: methods };
  const layer: Record<string, unknown>[] = [
    {
      name: 'bars',
      mark: { type: 'bar' },
      encoding: { x, xOffset, y: { field: 'value', type: 'quantitative', title: what }, color: { field: 'method', type: 'nominal', sort: methods, title: 'method' } },
    },
  ];
  if (values.some((v) => v.low !== null)) {
    layer.push({
      name: 'spread',
      transform: [{ filter: 'datum.low !== null' }],
      mark: { type: 'rule', color: 'black', strokeWidth: 1 },
      encoding: { x, xOffset, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } },
    });
  }
  return {
    $schema: SCHEMA,
    title: `${scenario}: ${what} per ${kind === 'ctta' ? 'domain' : 'task'}, mean over seeds`,
    // With xOffset the step is one bar: 6-24 px, so 16 domains x 6 methods stay about 1000 px wide.
    width: { step: Math.max(6, Math.min(24, Math.floor(800 / (columns.length * methods.length)))) },
    height: 300,
    background: 'white',
    config: CONFIG,
    data: { values },
    layer,
  } as unknown as TopLevelSpec;
}

/** Fill of the cells of tasks not yet trained on, and of their labels. */
const UNSEEN_FILL = '#e6e6e6';
const UNSEEN_TEXT = '#8c8c8c';

/**
 * One heatmap per method (x: task evaluated on, y: task trained on last), cell = A[i][j] in %,
 * mean over the seeds, with its value. Cells j > i (a task not trained on yet) are grey: their
 * accuracy is not learning but chance or a base model's prior, and colouring them like the
 * rest would draw the eye to the wrong triangle.
 */
function matrixSpec(scenario: string, methods: string[], byMethod: FinishedRun[][]): TopLevelSpec {
  const values: { method: string; after: string; on: string; accuracy: number; label: string; seen: boolean }[] = [];
  let tasks: string[] = [];
  methods.forEach((method, m) => {
    const runs = byMethod[m]!.filter((r) => r.summary.accuracyMatrix !== undefined);
    if (runs.length === 0) return;
    const matrices = runs.map((r) => r.summary.accuracyMatrix!);
    const size = Math.min(...matrices.map((a) => a.length));
    const names = Array.from({ length: size }, (_, j) => runs[0]!.header.tasks[j] ?? `task ${j}`);
    if (names.length > tasks.length) tasks = names;
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        const cells = matrices.map((a) => a[i]?.[j]).filter((v): v is number => typeof v === 'number');
        if (cells.length === 0) continue;
        const accuracy = describe(cells.map((v) => v * 100)).mean;
        values.push({ method, after: names[i]!, on: names[j]!, accuracy, label: fixed(accuracy, 1), seen: j <= i });
      }
    }
  });
  if (values.length === 0) {
    throw new CttaError(`scenario ${scenario} has no accuracy matrix (its runs are not online continual learning runs)`, {
      fix: 'use --kind online or --kind domains',
    });
  }
  const cell = Math.max(28, Math.min(48, Math.floor(360 / tasks.length)));
  return {
    $schema: SCHEMA,
    title: `${scenario}: accuracy (%) on each task after each task, mean over seeds`,
    background: 'white',
    config: CONFIG,
    data: { values },
    facet: { column: { field: 'method', type: 'nominal', sort: methods.filter((m) => values.some((v) => v.method === m)), title: null } },
    spec: {
      width: cell * tasks.length,
      height: cell * tasks.length,
      encoding: {
        x: { field: 'on', type: 'ordinal', sort: tasks, title: 'evaluated on', axis: { labelAngle: 0 } },
        y: { field: 'after', type: 'ordinal', sort: tasks, title: 'after training on' },
      },
      layer: [
        {
          name: 'cells',
          mark: { type: 'rect' },
          encoding: {
            color: {
              condition: { test: '!datum.seen', value: UNSEEN_FILL },
              field: 'accuracy',
              type: 'quantitative',
              scale: { domain: [0, 100], scheme: 'blues' },
              title: 'accuracy (%)',
            },
          },
        },
        {
          name: 'labels',
          mark: { type: 'text', fontSize: 10 },
          encoding: {
            text: { field: 'label', type: 'nominal' },
            color: {
              condition: [
                { test: '!datum.seen', value: UNSEEN_TEXT },
                { test: 'datum.accuracy > 60', value: 'white' },
              ],
              value: 'black',
            },
          },
        },
      ],
    },
  } as unknown as TopLevelSpec;
}

/** Renders a Vega-Lite spec to an SVG string, headless (no canvas, no fonts). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded on first use: vega is large, and most commands never draw.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const runtime = vega.parse(compile(spec).spec);
  const view = new vega.View(runtime, { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterizes an SVG to PNG; `scale` 2 gives crisp lines on high-density screens. */
export async function renderPng(svg: string, options: { scale?: number } = {}): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * (options.scale ?? 2) }).png().toBuffer();
}
