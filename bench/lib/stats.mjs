// Small statistics and formatting helpers of the benchmark harness.

/** Median, min, max and count of a list of numbers (undefined for an empty list). */
export function summary(samples) {
  const xs = samples.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return undefined;
  const mid = xs.length >> 1;
  const median = xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
  return { median, min: xs[0], max: xs[xs.length - 1], n: xs.length };
}

/** Applies f to median, min and max (a decreasing f, such as ms -> img/s, swaps min and max). */
export function mapSummary(s, f) {
  if (!s) return undefined;
  const a = f(s.min);
  const b = f(s.max);
  return { median: f(s.median), min: Math.min(a, b), max: Math.max(a, b), n: s.n };
}

/** A number with about three significant digits, thousands separated. */
export function num(v, digits) {
  if (v === undefined || v === null || !Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  const d = digits ?? (a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** "median [min-max]". */
export function spread(s, digits) {
  if (!s) return '-';
  return `${num(s.median, digits)} [${num(s.min, digits)}-${num(s.max, digits)}]`;
}

export const MiB = 2 ** 20;

/** A markdown table from a header row and rows of cells. */
export function table(header, rows) {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/** ms of one call of f, averaged over `iters` calls (f must leave the backend idle on return). */
export function timeSync(f, iters) {
  const t = performance.now();
  for (let i = 0; i < iters; i++) f();
  return (performance.now() - t) / iters;
}

export async function timeAsync(f, iters) {
  const t = performance.now();
  for (let i = 0; i < iters; i++) await f();
  return (performance.now() - t) / iters;
}
