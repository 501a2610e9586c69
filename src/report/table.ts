/**
 * The papers' table from result files: one row per (scenario, method or variant label), one
 * column per domain (error %, mean over seeds) plus their mean, then throughput and memory.
 * Online continual learning runs (those with an accuracy matrix) get the OCL layout instead:
 * final average accuracy, forgetting (ours and the legacy one), average incremental accuracy,
 * BWT, anytime accuracy when measured, the accuracy on each task after the last task, and the
 * method's state. Methods that report state parts get a column per part's peak in both. The
 * diagnostics table (summarizeDiagnostics) has one column per per-batch diagnostic the methods
 * reported, with the same rows and formats.
 *
 * Everything here is a pure function of the runs, with fixed decimals and code-unit ordering, so
 * the same files give byte-identical tables on any machine, sharded or not.
 */
import { stringify } from 'csv-stringify/sync';
import { CttaError } from '../errors.js';
import { matrixMetrics, type MatrixMetrics } from '../eval/metrics.js';
import { compareStrings, runName, type FinishedRun } from './results.js';

/** A column's value over seeds. */
export interface Stat {
  /** Seeds that have the value. */
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 denominator); null for one seed. */
  std: number | null;
  /** Half-width of the 95% Student-t confidence interval of the mean; null for one seed. */
  ci95: number | null;
}

export interface TableCell {
  column: string;
  /** null when some run lacks the value (printed as "-"). */
  stat: Stat | null;
  /** Fixed decimals: 1 for %, 2 for MiB, 0 for images/s. */
  decimals: number;
  /** OCL layout: the task whose accuracy after the last task the column holds (plots pick these). */
  task?: number;
}

export interface TableRow {
  scenario: string;
  method: string;
  /**
   * 'ctta': cells are error % per domain; 'ocl': the accuracy-matrix metrics, then accuracy %
   * per task after the last task; 'diagnostics': batches, then each per-batch diagnostic's mean
   * over the run.
   */
  kind: 'ctta' | 'ocl' | 'summary' | 'diagnostics';
  seeds: number[];
  cells: TableCell[];
}

export interface SummarizeOptions {
  /** Only this scenario (default: all, each its own table). */
  scenario?: string;
  /** Only these methods, in this order (default: all, `source` first, then alphabetical). */
  methods?: string[];
  /** Not a filter: these first, in this order (`ctta run --methods`), then the others as usual. */
  prefer?: string[];
  /** Columns of `summarize`'s rows; see TableLayout (default 'auto'). */
  layout?: TableLayout;
}

/**
 * 'ctta': error per domain (the CTTA papers' table); 'ocl': the accuracy-matrix metrics and
 * accuracy per task (online continual learning); 'auto': 'ocl' for a scenario whose runs have an
 * accuracy matrix (held-out task evaluations), 'ctta' otherwise. 'summary': a few columns that
 * fit a terminal (what `ctta run` prints): mean and online error, ECE, speed and memory, and for
 * OCL runs final average accuracy and forgetting first.
 */
export type TableLayout = 'auto' | 'ctta' | 'ocl' | 'summary';
export const TABLE_LAYOUTS: readonly TableLayout[] = ['auto', 'ctta', 'ocl', 'summary'];

/** What "±" shows: 'auto' = std for 2 seeds, 95% CI half-width for 3 or more. */
export type Spread = 'auto' | 'std' | 'ci95' | 'none';

const MIB = 1024 * 1024;

/** The built-in methods that report per-batch diagnostics (named when a results folder has none). */
export const DIAGNOSTIC_METHODS: readonly string[] = ['eata', 'sar', 'vida', 'cotta'];

/** Two-sided 95% Student-t quantiles t(0.975, df) for df = 1..30; beyond that the normal 1.96. */
const T975 = [
  12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281,
  2.201, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.093, 2.086,
  2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
];

export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`degrees of freedom must be an integer >= 1, got ${df}`);
  return df <= T975.length ? T975[df - 1]! : 1.96;
}

/** Mean, sample std and 95% t-interval half-width of values (summed in the given order). */
export function describe(values: number[]): Stat {
  const n = values.length;
  if (n === 0) throw new RangeError('describe() needs at least one value');
  const mean = values.reduce((s, v) => s + v, 0) / n;
  if (n === 1) return { n, mean, std: null, ci95: null };
  const std = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
  return { n, mean, std, ci95: (tQuantile975(n - 1) * std) / Math.sqrt(n) };
}

/** Rows of the papers' table; see the file comment. */
export function summarize(runs: FinishedRun[], options: SummarizeOptions = {}): TableRow[] {
  return groupRuns(runs, options).flatMap(({ scenario, groups }) => {
    // Columns are decided per scenario, so that all its rows print as one table.
    const ofScenario = groups.flatMap((g) => g.runs);
    if (options.layout === 'summary') {
      const ocl = ofScenario.every((r) => r.summary.accuracyMatrix !== undefined);
      return groups.map(({ method, runs }) => summaryRow(scenario, method, runs, ocl));
    }
    const layout = chooseLayout(scenario, ofScenario, options.layout ?? 'auto');
    const parts = statePartNames(ofScenario);
    if (layout === 'ctta') return groups.map(({ method, runs }) => cttaRow(scenario, method, runs, parts));
    const columns: OclColumns = { tasks: taskColumns(ofScenario, parts), anytime: ofScenario.some((r) => r.summary.averageAnytimeAccuracy !== undefined), parts };
    return groups.map(({ method, runs }) => oclRow(scenario, method, runs, columns));
  });
}

/** The layout of one scenario's table; 'ocl' needs every run to have an accuracy matrix. */
function chooseLayout(scenario: string, runs: FinishedRun[], wanted: TableLayout): 'ctta' | 'ocl' {
  if (wanted === 'ctta') return 'ctta';
  const withMatrix = runs.find((r) => r.summary.accuracyMatrix !== undefined);
  if (!withMatrix) {
    if (wanted === 'auto') return 'ctta';
    throw new CttaError(`the runs of scenario ${scenario} have no accuracy matrix (no held-out task evaluations), so there is no OCL table`, {
      fix: 'use --layout ctta (error per domain), or run a scenario with an incremental ordering and "heldOut"',
    });
  }
  const without = runs.find((r) => r.summary.accuracyMatrix === undefined);
  if (without) {
    throw new CttaError(`${withMatrix.file} has an accuracy matrix and ${without.file} has none, for the same scenario`, {
      fix: 'delete the runs written by the older ctta and re-run them (or --layout ctta: error per domain for all of them)',
    });
  }
  return 'ocl';
}

/** Names of the state parts the runs report, sorted (code units: the same on every machine). */
function statePartNames(runs: FinishedRun[]): string[] {
  return [...new Set(runs.flatMap((r) => Object.keys(r.summary.peakStateParts ?? {})))].sort(compareStrings);
}

const partColumn = (part: string) => `${part} peak MiB`;

/** The metric columns of the OCL layout, in order, with the summary field each shows. */
const OCL_METRICS: readonly (readonly [string, keyof MatrixMetrics])[] = [
  ['avg acc', 'finalAverageAccuracy'],
  ['forgetting', 'forgetting'],
  ['legacy forgetting', 'legacyForgetting'],
  ['avg inc acc', 'averageIncrementalAccuracy'],
  ['BWT', 'bwt'],
];
const ANYTIME_COLUMN = 'anytime acc';

interface OclColumns {
  /** Column name per task, in task order. */
  tasks: string[];
  /** Whether some run measured anytime accuracy (the column is shown). */
  anytime: boolean;
  parts: string[];
}

/**
 * One column per task of the longest matrix, named after the task; a name that another column
 * already has (a task called "BWT") gets a "task " prefix, so CSV columns stay unambiguous.
 */
function taskColumns(runs: FinishedRun[], parts: string[]): string[] {
  const header = runs[0]!.header;
  const count = Math.max(header.tasks.length, ...runs.map((r) => r.summary.accuracyMatrix!.length));
  const taken = new Set<string>([...OCL_METRICS.map(([c]) => c), ANYTIME_COLUMN, 'state MiB', ...parts.map(partColumn)]);
  const names: string[] = [];
  for (let j = 0; j < count; j++) {
    let name = header.tasks[j] ?? `task ${j}`;
    while (taken.has(name)) name = `task ${name}`;
    taken.add(name);
    names.push(name);
  }
  return names;
}

/**
 * Rows of the diagnostics table: per run name (the table's row order), `batches` and, for each
 * diagnostic name reported in the scenario (in order of first appearance), its mean over the
 * batches of a run that report it, then mean ± spread over seeds. "-" when some seed lacks it.
 * Scenarios whose runs report no diagnostics give no rows.
 */
export function summarizeDiagnostics(runs: FinishedRun[], options: SummarizeOptions = {}): TableRow[] {
  const rows: TableRow[] = [];
  for (const { scenario, groups } of groupRuns(runs, options)) {
    const names = diagnosticNames(groups.flatMap((g) => g.runs));
    if (names.length === 0) continue;
    const means = groups.map((g) => names.map((name) => g.runs.map((r) => diagnosticMean(r, name))));
    for (const [k, { method, runs: group }] of groups.entries()) {
      const cells: TableCell[] = [{ column: 'batches', decimals: 0, stat: describe(group.map((r) => r.batches.length)) }];
      names.forEach((name, d) => {
        const values = means[k]![d]!;
        const ok = values.every((v): v is number => v !== undefined);
        // 3 significant digits of the column's largest mean: counts and rare 0/1 flags both read well.
        cells.push({ column: name, decimals: significantDecimals(means.flatMap((m) => m[d]!)), stat: ok ? describe(values) : null });
      });
      rows.push({ scenario, method, kind: 'diagnostics', seeds: group.map((r) => r.header.seed), cells });
    }
  }
  return rows;
}

/** Diagnostic names of the runs, in order of first appearance (runs in table order, batches in order). */
export function diagnosticNames(runs: FinishedRun[]): string[] {
  const names = new Set<string>();
  for (const r of runs) for (const b of r.batches) for (const name of Object.keys(b.diagnostics ?? {})) names.add(name);
  return [...names];
}

/** Mean of a diagnostic over the run's batches that report it; undefined when none does. */
function diagnosticMean(run: FinishedRun, name: string): number | undefined {
  let sum = 0;
  let n = 0;
  for (const b of run.batches) {
    const v = b.diagnostics?.[name];
    if (v === undefined) continue;
    sum += v;
    n++;
  }
  return n === 0 ? undefined : sum / n;
}

function significantDecimals(values: (number | undefined)[]): number {
  const largest = Math.max(0, ...values.map((v) => (v === undefined ? 0 : Math.abs(v))));
  if (largest === 0) return 3;
  return Math.min(6, Math.max(0, 2 - Math.floor(Math.log10(largest))));
}

/** The runs of each scenario (sorted) by run name, in table order; checks the filters. */
function groupRuns(runs: FinishedRun[], options: SummarizeOptions): { scenario: string; groups: { method: string; runs: FinishedRun[] }[] }[] {
  const scenarios = [...new Set(runs.map((r) => r.header.scenario))].sort(compareStrings);
  if (options.scenario !== undefined && !scenarios.includes(options.scenario)) {
    throw new CttaError(`no finished runs of scenario "${options.scenario}"`, { fix: `pass one of: ${scenarios.join(', ') || '(none: run `ctta run` first)'}` });
  }
  const out = [];
  for (const scenario of scenarios) {
    if (options.scenario !== undefined && scenario !== options.scenario) continue;
    const ofScenario = runs.filter((r) => r.header.scenario === scenario);
    checkSameScenario(ofScenario);
    const present = orderMethods(ofScenario.map((r) => runName(r.header)), options.methods, scenario);
    const first = (options.prefer ?? []).filter((m) => present.includes(m));
    const groups = [...new Set([...first, ...present])].map((method) => ({
      method,
      runs: ofScenario.filter((r) => runName(r.header) === method).sort((a, b) => a.header.seed - b.header.seed),
    }));
    out.push({ scenario, groups });
  }
  return out;
}

/** `source` first, then alphabetical; or exactly the requested methods in the requested order. */
export function orderMethods(present: string[], requested: string[] | undefined, scenario: string): string[] {
  const unique = [...new Set(present)].sort((a, b) => (a === 'source' ? -1 : b === 'source' ? 1 : compareStrings(a, b)));
  if (!requested) return unique;
  const missing = requested.filter((m) => !unique.includes(m));
  if (missing.length) {
    throw new CttaError(`no finished runs of method ${missing.map((m) => `"${m}"`).join(', ')} in scenario ${scenario}`, {
      fix: `choose from: ${unique.join(', ')}`,
    });
  }
  return [...new Set(requested)];
}

// Averaging methods over different streams would compare nothing: a table's runs must come from
// the same scenario file (same hash), whatever machine or shard ran them.
function checkSameScenario(runs: FinishedRun[]): void {
  const first = runs[0]!;
  const other = runs.find((r) => r.header.scenarioHash !== first.header.scenarioHash);
  if (other) {
    throw new CttaError(`${first.file} and ${other.file} ran different versions of scenario ${first.header.scenario} (scenarioHash differs)`, {
      fix: 'the scenario file changed between runs: delete the stale runs and re-run them, or keep the two versions in separate directories',
    });
  }
}

/** A column's value over a group's seeds; null (printed "-") when some seed lacks it. */
function cellOf(runs: FinishedRun[], column: string, decimals: number, value: (r: FinishedRun) => number | undefined): TableCell {
  const values = runs.map(value);
  const ok = values.every((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return { column, decimals, stat: ok ? describe(values) : null };
}

const pct = (v: number | undefined) => (v === undefined ? undefined : v * 100);

/** The method's memory: state at the end of the run, then each part's peak. */
function stateCells(runs: FinishedRun[], parts: string[]): TableCell[] {
  return [
    cellOf(runs, 'state MiB', 2, (r) => r.summary.methodStateBytes / MIB),
    ...parts.map((p) => cellOf(runs, partColumn(p), 2, (r) => {
      const bytes = r.summary.peakStateParts?.[p];
      return bytes === undefined ? undefined : bytes / MIB;
    })),
  ];
}

function cttaRow(scenario: string, method: string, runs: FinishedRun[], parts: string[]): TableRow {
  const header = runs[0]!.header;
  const cells: TableCell[] = [];
  for (const d of header.domains) cells.push(cellOf(runs, d, 1, (r) => pct(r.summary.errorPerDomain[d])));
  cells.push(cellOf(runs, 'mean', 1, (r) => pct(r.summary.meanError)));
  cells.push(cellOf(runs, 'img/s', 0, (r) => r.summary.imagesPerSecond));
  cells.push(cellOf(runs, 'peak MiB', 2, (r) => r.summary.peakTensorBytes / MIB));
  cells.push(...stateCells(runs, parts));
  return { scenario, method, kind: 'ctta', seeds: runs.map((r) => r.header.seed), cells };
}

/**
 * An accuracy-matrix metric of an OCL run: its summary's; files written before a metric existed
 * (legacyForgetting) get it from their matrix, by the same function the runner uses.
 */
function matrixMetric(r: FinishedRun, key: keyof MatrixMetrics): number | undefined {
  return r.summary[key] ?? matrixMetrics(r.summary.accuracyMatrix!)[key];
}

function summaryRow(scenario: string, method: string, runs: FinishedRun[], ocl: boolean): TableRow {
  const cells: TableCell[] = [];
  if (ocl) {
    cells.push(cellOf(runs, 'avg acc', 1, (r) => pct(matrixMetric(r, 'finalAverageAccuracy'))));
    cells.push(cellOf(runs, 'forgetting', 1, (r) => pct(matrixMetric(r, 'forgetting'))));
  } else {
    cells.push(cellOf(runs, 'mean err', 1, (r) => pct(r.summary.meanError)));
  }
  cells.push(cellOf(runs, 'online err', 1, (r) => pct(r.summary.onlineError)));
  cells.push(cellOf(runs, 'ECE', 1, (r) => pct(r.summary.ece)));
  cells.push(cellOf(runs, 'img/s', 0, (r) => r.summary.imagesPerSecond));
  cells.push(cellOf(runs, 'peak MiB', 2, (r) => r.summary.peakTensorBytes / MIB));
  cells.push(cellOf(runs, 'state MiB', 2, (r) => r.summary.methodStateBytes / MIB));
  return { scenario, method, kind: 'summary', seeds: runs.map((r) => r.header.seed), cells };
}

function oclRow(scenario: string, method: string, runs: FinishedRun[], columns: OclColumns): TableRow {
  const cells: TableCell[] = OCL_METRICS.map(([column, key]) => cellOf(runs, column, 1, (r) => pct(matrixMetric(r, key))));
  if (columns.anytime) cells.push(cellOf(runs, ANYTIME_COLUMN, 1, (r) => pct(r.summary.averageAnytimeAccuracy)));
  columns.tasks.forEach((column, j) => {
    const cell = cellOf(runs, column, 1, (r) => {
      const a = r.summary.accuracyMatrix!;
      // A task the stream never reached (a run cut by --limit) has no accuracy "after the last
      // task": its held-out score then is of classes not yet learned, so the cell stays empty.
      return j < a.length ? pct(a[a.length - 1]?.[j]) : undefined;
    });
    cells.push({ ...cell, task: j });
  });
  cells.push(...stateCells(runs, columns.parts));
  return { scenario, method, kind: 'ocl', seeds: runs.map((r) => r.header.seed), cells };
}

/** Fixed decimals, and never "-0.0" (a tiny negative BWT would print differently from +0). */
export function fixed(value: number, decimals: number): string {
  const s = value.toFixed(decimals);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

function spreadOf(stat: Stat, spread: Spread): number | null {
  if (spread === 'none' || stat.n < 2) return null;
  if (spread === 'std') return stat.std;
  if (spread === 'ci95') return stat.ci95;
  return stat.n === 2 ? stat.std : stat.ci95;
}

/** "12.3", "12.3 ± 0.4" or "-" for a cell. */
export function formatCell(cell: TableCell, spread: Spread = 'auto'): string {
  if (!cell.stat) return '-';
  const s = spreadOf(cell.stat, spread);
  const mean = fixed(cell.stat.mean, cell.decimals);
  return s === null ? mean : `${mean} ± ${fixed(s, cell.decimals)}`;
}

/** Consecutive rows that share a scenario, a kind and columns print as one table. */
function tables(rows: TableRow[]): TableRow[][] {
  const out: TableRow[][] = [];
  const key = (r: TableRow) => JSON.stringify([r.scenario, r.kind, r.cells.map((c) => c.column)]);
  for (const row of rows) {
    const last = out[out.length - 1];
    if (last && key(last[0]!) === key(row)) last.push(row);
    else out.push([row]);
  }
  return out;
}

function spreadNote(rows: TableRow[], spread: Spread): string | null {
  const ns = rows.map((r) => r.seeds.length);
  if (spread === 'none' || !ns.some((n) => n >= 2)) return null;
  if (spread === 'std') return '± is the standard deviation over seeds.';
  if (spread === 'ci95') return '± is the half-width of the 95% Student-t confidence interval over seeds.';
  const two = ns.includes(2);
  const more = ns.some((n) => n >= 3);
  if (two && more) return '± is the standard deviation for 2 seeds and the half-width of the 95% Student-t confidence interval for 3 or more.';
  return two ? '± is the standard deviation over seeds.' : '± is the half-width of the 95% Student-t confidence interval over seeds.';
}

/** What the OCL columns mean (their names are short to keep the table narrow). */
function oclLegend(row: TableRow): string {
  const anytime = row.cells.some((c) => c.column === ANYTIME_COLUMN);
  return [
    'avg acc: final average accuracy over all tasks',
    'forgetting: best earlier accuracy minus final, mean over all tasks but the last',
    "legacy forgetting: as Mai et al.'s OCL code (used by OnPro, OCM) computes it, best over all evaluations minus final, mean over all tasks",
    'avg inc acc: average incremental accuracy',
    'BWT: final minus just-learned accuracy, mean over all tasks but the last',
    ...(anytime ? ["anytime acc: accuracy on the held-out images of the tasks seen so far every heldOut.every batches, mean over the stream"] : []),
  ].join('; ') + '.';
}

function summaryLegend(row: TableRow): string {
  const ocl = row.cells[0]?.column === 'avg acc';
  return [
    ...(ocl ? ['avg acc: final average accuracy over all tasks', 'forgetting: best earlier accuracy minus final, mean over all tasks but the last'] : ['mean err: the error of each domain, averaged over domains']),
    'online err: the error over all images in stream order',
    'ECE: expected calibration error (15 bins)',
    'peak MiB: tensor memory',
    'state MiB: what the method holds beyond the model',
  ].join('; ') + '.';
}

function escapeMd(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** Markdown: one table per scenario (and kind), padded for reading in a terminal. */
export function formatMarkdown(rows: TableRow[], options: { spread?: Spread } = {}): string {
  const spread = options.spread ?? 'auto';
  const parts: string[] = [];
  for (const group of tables(rows)) {
    const first = group[0]!;
    const what = {
      ctta: 'error (%) per domain',
      ocl: 'accuracy-matrix metrics (%) and accuracy (%) per task after the last task',
      summary: 'summary (%)',
      diagnostics: 'diagnostics, mean per batch over the run',
    }[first.kind];
    const head = ['method', 'seeds', ...first.cells.map((c) => escapeMd(c.column))];
    const body = group.map((r) => [escapeMd(r.method), String(r.seeds.length), ...r.cells.map((c) => formatCell(c, spread))]);
    const widths = head.map((h, k) => Math.max(3, h.length, ...body.map((b) => b[k]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, k) => (k === 0 ? c.padEnd(widths[k]!) : c.padStart(widths[k]!))).join(' | ')} |`;
    const rule = `| ${widths.map((w, k) => (k === 0 ? ':' + '-'.repeat(w - 1) : '-'.repeat(w - 1) + ':')).join(' | ')} |`;
    const lines = [`### ${escapeMd(first.scenario)}: ${what}, mean over seeds`, '', line(head), rule, ...body.map(line)];
    if (first.kind === 'ocl') lines.push('', oclLegend(first));
    if (first.kind === 'summary') lines.push('', summaryLegend(first));
    const note = spreadNote(group, spread);
    if (note) lines.push('', note);
    parts.push(lines.join('\n') + '\n');
  }
  return parts.join('\n');
}

/**
 * CSV (one header line, one line per row): scenario, kind, method, seeds, then per column its
 * mean, and `<column> std` / `<column> ci95` when some row has 2 / 3 or more seeds. Rows of
 * different scenarios share the union of the columns (empty where a column does not apply).
 * Values are unrounded (the shortest text that reads back as the same double), for analysis;
 * `rounded` gives the markdown table's decimals instead.
 */
export function formatCsv(rows: TableRow[], options: { rounded?: boolean } = {}): string {
  const columns: string[] = [];
  for (const r of rows) for (const c of r.cells) if (!columns.includes(c.column)) columns.push(c.column);
  const maxN = Math.max(0, ...rows.map((r) => r.seeds.length));
  const head = ['scenario', 'kind', 'method', 'seeds'];
  for (const c of columns) {
    head.push(c);
    if (maxN >= 2) head.push(`${c} std`);
    if (maxN >= 3) head.push(`${c} ci95`);
  }
  const body = rows.map((r) => {
    const line = [r.scenario, r.kind, r.method, String(r.seeds.length)];
    for (const column of columns) {
      const cell = r.cells.find((c) => c.column === column);
      const s = cell?.stat;
      const num = (v: number | null | undefined) => (v === null || v === undefined || !cell ? '' : options.rounded ? fixed(v, cell.decimals) : String(v === 0 ? 0 : v));
      line.push(num(s?.mean));
      if (maxN >= 2) line.push(num(s?.std));
      if (maxN >= 3) line.push(num(s?.ci95));
    }
    return line;
  });
  return stringify([head, ...body]);
}
