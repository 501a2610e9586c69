/**
 * `ctta report`: one self-contained HTML file for a results folder, readable offline and
 * attachable to an e-mail or a paper's supplement. Per scenario: the summary and the papers'
 * table, the charts (windowed online error, error per domain, the OCL accuracy matrix, the
 * methods' diagnostics), the diagnostics table, and every run's metadata (versions, backend,
 * options, hashes) so a reader can tell which runs the numbers come from.
 *
 * Charts are Vega-Lite specs compiled to Vega here and drawn in the browser as SVG by vega's
 * runtime, inlined (no network), with tooltips on the marks. The tables are plain HTML, so the
 * file is useful even with scripts off.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { plotRuns, type PlotKind } from './plot.js';
import { runName, type FinishedRun } from './results.js';
import { CttaError } from '../errors.js';
import { formatCell, summarize, summarizeDiagnostics, type TableRow } from './table.js';

const require = createRequire(import.meta.url);

/** vega's browser build: beside the schema file, the one path its package exports besides the module. */
function vegaBrowserBuild(): string {
  return join(dirname(require.resolve('vega/vega-schema.json')), 'vega.min.js');
}

export interface HtmlReportOptions {
  /** Shown in the title: the folder the runs were read from. */
  source: string;
  /** Only these methods, in this order. */
  methods?: string[];
  /** The ctta version writing the report. */
  ctta: string;
  /** Fixed time for reproducible files (tests); default now. */
  generatedAt?: Date;
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JSON inside a <script> element: "</script>" or "<!--" in a string must not end it. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

function tableHtml(rows: TableRow[], caption: string): string {
  if (rows.length === 0) return '';
  const columns = rows[0]!.cells.map((c) => c.column);
  const head = ['method', 'seeds', ...columns].map((c) => `<th>${escape(c)}</th>`).join('');
  const body = rows
    .map((r) => `<tr><th scope="row">${escape(r.method)}</th><td>${r.seeds.length}</td>${r.cells.map((c) => `<td>${escape(formatCell(c))}</td>`).join('')}</tr>`)
    .join('\n');
  // In a scrolling box: a per-domain table of 15 corruptions is wider than the page.
  return `<div class="wide"><table><caption>${escape(caption)}</caption><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

function metadataHtml(runs: FinishedRun[]): string {
  const short = (h: string | undefined) => (h ? h.slice(0, 12) : '-');
  const rows = runs.map((r) => {
    const h = r.header;
    const tfjs = h.versions['tfjs-core'] ?? h.versions.tfjs ?? '-';
    return `<tr><th scope="row">${escape(runName(h))}</th><td>${h.seed}</td><td>${escape(h.method)}</td><td><code>${escape(JSON.stringify(h.methodOptions))}</code></td><td>${escape(h.backend)}${h.threads ? ` x${h.threads}` : ''}</td><td>${escape(tfjs)}</td><td>${escape(h.ctta)}</td><td>${escape(h.node)}</td><td><code>${short(h.scenarioHash)}</code></td><td><code>${short(h.modelHash)}</code></td><td>${r.summary.seconds.toFixed(1)}</td><td>${escape(h.startedAt)}</td><td>${escape((h.warnings ?? []).join('; '))}</td></tr>`;
  });
  const head = ['run', 'seed', 'method', 'options', 'backend', 'tfjs', 'ctta', 'node', 'scenario hash', 'model hash', 'seconds', 'started', 'warnings'];
  return `<details><summary>Run metadata (${runs.length} runs)</summary><table class="meta"><thead><tr>${head.map((c) => `<th>${c}</th>`).join('')}</tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table></details>`;
}

/** A chart spec with tooltips on its marks (vega shows them as the SVG elements' titles). */
function withTooltips(spec: TopLevelSpec): TopLevelSpec {
  const add = (layer: Record<string, unknown>) => {
    const mark = layer.mark;
    if (mark && typeof mark === 'object') layer.mark = { ...(mark as object), tooltip: { content: 'data' } };
    else if (typeof mark === 'string') layer.mark = { type: mark, tooltip: { content: 'data' } };
  };
  const walk = (node: Record<string, unknown>) => {
    if (node.mark) add(node);
    for (const key of ['layer', 'vconcat', 'hconcat', 'concat']) {
      const children = node[key];
      if (Array.isArray(children)) children.forEach((c) => walk(c as Record<string, unknown>));
    }
    if (node.spec && typeof node.spec === 'object') walk(node.spec as Record<string, unknown>);
  };
  const copy = JSON.parse(JSON.stringify(spec)) as Record<string, unknown>;
  walk(copy);
  return copy as unknown as TopLevelSpec;
}

/**
 * The charts that apply to one scenario's runs (a kind that does not apply is left out);
 * `diagnostics`: whether the methods shown report any (the diagnostics table has rows).
 */
function chartsOf(runs: FinishedRun[], scenario: string, methods: string[] | undefined, diagnostics: boolean): { kind: PlotKind; spec: TopLevelSpec }[] {
  const ocl = runs.every((r) => r.summary.accuracyMatrix !== undefined);
  const kinds: PlotKind[] = ['online', 'domains', ...(ocl ? (['matrix'] as const) : []), ...(diagnostics ? (['diagnostics'] as const) : [])];
  return kinds.map((kind) => ({ kind, spec: withTooltips(plotRuns(runs, { kind, scenario, methods })) }));
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; max-width: 100%; }
caption { text-align: left; font-weight: 600; padding-bottom: .3em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; white-space: nowrap; }
th[scope=row], thead th:first-child { text-align: left; }
table.meta td, table.meta th { text-align: left; font-size: 12px; }
.chart { margin: 1em 0; overflow-x: auto; }
.legend { color: #555; font-size: 12px; max-width: 70em; }
code { font-size: 12px; }`;

/**
 * The runs of the requested methods (all runs without a request). A method no scenario has is an
 * error naming the methods there are; one that only some scenarios have is shown where it ran.
 */
export function selectRuns(runs: FinishedRun[], methods: string[] | undefined): FinishedRun[] {
  if (!methods) return runs;
  const present = new Set(runs.map((r) => runName(r.header)));
  const missing = methods.filter((m) => !present.has(m));
  if (missing.length > 0) {
    throw new CttaError(`no finished runs of method ${missing.map((m) => `"${m}"`).join(', ')} in any scenario`, { fix: `choose from: ${[...present].sort().join(', ')}` });
  }
  return runs.filter((r) => methods.includes(runName(r.header)));
}

/** The report as one HTML string (vega's runtime inlined). */
export async function buildHtmlReport(runs: FinishedRun[], options: HtmlReportOptions): Promise<string> {
  const { compile } = await import('vega-lite');
  const shown = selectRuns(runs, options.methods);
  const scenarios = [...new Set(shown.map((r) => r.header.scenario))].sort();
  const charts: { id: string; spec: unknown }[] = [];
  const sections: string[] = [];
  for (const scenario of scenarios) {
    const ofScenario = shown.filter((r) => r.header.scenario === scenario);
    // The requested methods this scenario has, in the requested order (a folder of several
    // scenarios rarely has every method in each).
    const present = new Set(ofScenario.map((r) => runName(r.header)));
    const filter = { scenario, methods: options.methods?.filter((m) => present.has(m)) };
    const summary = summarize(ofScenario, { ...filter, layout: 'summary' });
    const full = summarize(ofScenario, filter);
    const diagnostics = summarizeDiagnostics(ofScenario, filter);
    const blocks = [
      `<h2 id="${escape(scenario)}">${escape(scenario)}</h2>`,
      tableHtml(summary, 'Summary (%): mean over domains and online error, calibration, speed, memory; mean ± spread over seeds'),
      tableHtml(full, full[0]?.kind === 'ocl' ? 'Accuracy-matrix metrics (%) and accuracy per task after the last task' : 'Error (%) per domain, the papers\' table'),
      '<p class="legend">± is the standard deviation for 2 seeds, the half-width of the 95% Student-t interval for 3 or more. Online error: over all images in stream order. ECE: expected calibration error, 15 bins.</p>',
    ];
    for (const { kind, spec } of chartsOf(ofScenario, scenario, filter.methods, diagnostics.length > 0)) {
      const id = `chart-${charts.length}`;
      charts.push({ id, spec: compile(spec).spec });
      blocks.push(`<div class="chart" id="${id}" data-kind="${kind}" role="img" aria-label="${escape(`${scenario}: ${kind} chart`)}"></div>`);
    }
    if (diagnostics.length > 0) blocks.push(tableHtml(diagnostics, "Methods' per-batch diagnostics, mean per batch over the run, then over seeds"));
    blocks.push(metadataHtml(ofScenario));
    sections.push(blocks.filter(Boolean).join('\n'));
  }
  const vega = readFileSync(vegaBrowserBuild(), 'utf8').replace(/<\/script/gi, '<\\/script');
  const when = (options.generatedAt ?? new Date()).toISOString();
  const toc = scenarios.map((s) => `<li><a href="#${escape(s)}">${escape(s)}</a></li>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ctta report: ${escape(options.source)}</title><style>${STYLE}</style></head>
<body>
<h1>ctta report: ${escape(options.source)}</h1>
<p>${shown.length} runs of ${scenarios.length} scenario(s)${options.methods ? ` (methods ${escape(options.methods.join(', '))})` : ''}; written by ctta ${escape(options.ctta)} on ${escape(when)}. Regenerate: <code>ctta report ${escape(options.source)} --out report.html</code>.</p>
<ul>${toc}</ul>
${sections.join('\n')}
<script>${vega}</script>
<script>
const charts = ${scriptJson(charts)};
for (const { id, spec } of charts) {
  const view = new vega.View(vega.parse(spec), { renderer: 'svg', container: '#' + id, hover: true });
  view.runAsync().then(() => document.getElementById(id).setAttribute('data-rendered', 'true'));
}
</script>
</body></html>
`;
}
