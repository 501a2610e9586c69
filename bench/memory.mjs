// Memory over a long stream: does anything grow? Runs methods over ~100k corrupted Fashion-MNIST
// images (the 15 corruptions x 6,667 images, the continual order, batch 64) in this process and
// reads the per-batch records every run writes: live tensor bytes and the process's RSS. Prints,
// per method, the tensor bytes at the start and end and their maximum (a leak shows as a rise),
// and RSS at 10% / 50% / 100% of the stream with its least-squares slope over the last 90% (MiB
// per 10k images; the wasm heap grows in steps and never shrinks, so a flat tail is what counts).
//
//   npm run build && node bench/memory.mjs [--methods source,tent,eata,rotta] [--per-domain 6667]
//   [--out bench/results-memory.md]
// A figure, not a test: about 4 min for Source and 6-10 min for TENT/EATA on one idle core.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadScenario, parseScenario, runScenario, setBackend } from '../dist/index.js';
import { cpuInfo, loadAverage } from './lib/machine.mjs';

const args = process.argv.slice(2);
const arg = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const methods = arg('--methods', 'source,tent,eata,rotta').split(',');
const perDomain = Number(arg('--per-domain', 6667));
const outFile = arg('--out', undefined);

tf.env().set('PROD', true);
await setBackend('wasm');
const base = loadScenario('fmnist-c-continual');
// 10,000 test images per corruption: 6,667 each gives 100,005 images over the 15.
const { file: _file, hash: _hash, ...fields } = structuredClone(base);
const scenario = parseScenario({ ...fields, model: resolve(base.model), ordering: { name: 'continual', params: { samplesPerDomain: perDomain } }, seeds: [0] });
const out = mkdtempSync(join(tmpdir(), 'ctta-bench-memory-'));
const MiB = 2 ** 20;
const rows = [];
try {
  for (const method of methods) {
    const started = performance.now();
    const { batches, summary } = await runScenario({ scenario, method, seed: 0, out });
    const n = batches.length;
    const at = (f) => batches[Math.min(n - 1, Math.floor(f * (n - 1)))];
    const tail = batches.slice(Math.floor(n / 10));
    rows.push({
      method,
      images: summary.n,
      minutes: (performance.now() - started) / 60_000,
      tensorStart: batches[0].tensorBytes / MiB,
      tensorEnd: batches[n - 1].tensorBytes / MiB,
      tensorMax: Math.max(...batches.map((b) => b.tensorBytes)) / MiB,
      rss: [0.1, 0.5, 1].map((f) => at(f).rss / MiB),
      slope: slope(tail.map((b) => b.end), tail.map((b) => b.rss / MiB)) * 10_000,
      leaked: summary.leakedTensors,
    });
    console.error(`${method}: done`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}

/** Least-squares slope of y over x. */
function slope(x, y) {
  const mx = x.reduce((a, b) => a + b, 0) / x.length;
  const my = y.reduce((a, b) => a + b, 0) / y.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num += (x[i] - mx) * (y[i] - my);
    den += (x[i] - mx) ** 2;
  }
  return num / den;
}

const lines = [
  `# Memory over a ${rows[0]?.images.toLocaleString('en')}-image stream`,
  '',
  `\`node bench/memory.mjs --methods ${methods.join(',')} --per-domain ${perDomain}\`; ${cpuInfo().model}; load average at the end ${loadAverage()}; ${new Date().toISOString()}.`,
  '',
  '| method | images | minutes | tensor MiB start / end / max | leaked tensors | RSS MiB at 10% / 50% / 100% | RSS slope, last 90% (MiB per 10k images) |',
  '|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.method} | ${r.images} | ${r.minutes.toFixed(1)} | ${r.tensorStart.toFixed(2)} / ${r.tensorEnd.toFixed(2)} / ${r.tensorMax.toFixed(2)} | ${r.leaked} | ${r.rss.map((v) => v.toFixed(0)).join(' / ')} | ${r.slope.toFixed(2)} |`,
  ),
  '',
  'The methods run one after another in one process: a row\'s RSS includes the wasm heap the rows',
  'before it grew (it never shrinks). Live tensor bytes are per run; a leak would show as end > start.',
  '',
];
console.log(lines.join('\n'));
if (outFile) writeFileSync(outFile, lines.join('\n'));
