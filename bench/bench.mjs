#!/usr/bin/env node
// ctta's benchmark harness (`npm run bench`): one invocation measures
//  - images/s and peak memory of four passes (forward, BN-adapt forward, TENT step, full training
//    step) of resnet8 (28x28x1) and resnet20 (32x32x3) at batch 64, in ctta and in a PyTorch twin
//    of the same architecture (bench/peers/, parameter counts and logits checked equal on the
//    same weights) at 1 and 2 threads, in alternating rounds (ctta, peer 1 thread, peer 2
//    threads, ctta, ...), medians and min-max;
//  - the kernel profile of each pass (top kernels and their share) and GFLOP/s of each conv
//    shape (forward, input and filter gradient) against a plain large matMul on the same backend;
//  - every registered method's predict + adapt on a fixed stream as a ratio to Source's forward,
//    the analytic methods' update and LAME as fractions of one forward, and the stream's speed.
// It prints the tables and ctta/peer ratios, writes bench/results.md and bench/results.csv, and
// records the machine (CPU, SIMD flags, load average at start and end, versions).
//
//   npm run build && npm run bench -- [--quick] [--only forward,tent,...] [--no-peer] [--threads 1,2]
//
// The peer runs with /usr/bin/python3 when Debian's python3-torch is installed; without it the
// harness measures ctta alone and says so. PyTorch is a benchmark aid, never a dependency.
// Run it on an otherwise idle machine: everything here is wall-clock time.
import { mkdtempSync, rmSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AnalyticMethod, createMethod, listMethods, setBackend } from '../dist/index.js';
import { benchLame, benchStream } from './lib/lame-stream.mjs';
import { cpuInfo, loadAverage, softwareInfo } from './lib/machine.mjs';
import { benchSetting, methodSettings } from './lib/method-bench.mjs';
import { convCalls, convFlops, gemmCall, gflops, profileCall } from './lib/kernels.mjs';
import { MODELS, PASSES, PASS_LABEL, buildCtta, convShapes, cttaReference, exportWeights, maxDiff, perturbNorms, writeTensor } from './lib/passes.mjs';
import { startPeer } from './lib/peer.mjs';
import { MiB, mapSummary, num, spread, summary, table, timeSync } from './lib/stats.mjs';

const SECTIONS = ['check', ...PASSES, 'conv', 'methods', 'analytic', 'lame', 'stream'];
const HELP = `usage: npm run bench -- [options]     (after npm run build)

  --quick              a smoke run: 3 rounds, 1 call per round, small GEMM, 1 batch per method
                       round (figures are not measurements)
  --only a,b,...       sections to run (default all): ${SECTIONS.join(', ')}
  --no-peer            do not start the PyTorch peer
  --threads 1,2        the peer's torch.set_num_threads values (default 1,2)
  --ctta-threads N     ctta's wasm threads (default 1; N > 1 is the threaded build, as ctta run --threads)
  --reps N             rounds per measurement (default 11; at least 7 for a measurement)
  --models a,b         pass models (default ${Object.keys(MODELS).join(',')})
  --methods a,b        methods of the methods section (default: every registered one)
  --backend NAME       auto (default), wasm, tensorflow, tensorflow-gpu, cpu
  --out PREFIX         write PREFIX.md and PREFIX.csv (default bench/results)

examples:
  nice -n 19 npm run bench -- --quick
  npm run bench -- --only forward,tent --threads 1
  npm run bench -- --only passes --ctta-threads 2 --out bench/results-threads
  npm run bench -- --only methods --methods source,tent,cotta`;

function usage(message) {
  console.error(`bench: ${message} (see --help)`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { quick: false, peer: true, threads: [1, 2], cttaThreads: 1, only: new Set(SECTIONS), models: Object.keys(MODELS), backend: 'auto', out: 'bench/results' };
  const list = (v, name) => {
    if (v === undefined || v.startsWith('--')) usage(`${name} needs a value`);
    return v.split(',').map((s) => s.trim()).filter(Boolean);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log(HELP);
      process.exit(0);
    } else if (a === '--quick') o.quick = true;
    else if (a === '--no-peer') o.peer = false;
    else if (a === '--only') {
      const names = list(argv[++i], a);
      const bad = names.filter((n) => !SECTIONS.includes(n));
      if (bad.length) usage(`--only: unknown section ${bad.join(', ')}; sections: ${SECTIONS.join(', ')}`);
      o.only = new Set(names);
    } else if (a === '--ctta-threads') {
      o.cttaThreads = Number(argv[++i]);
      if (!Number.isInteger(o.cttaThreads) || o.cttaThreads < 1) usage('--ctta-threads: a positive integer');
    } else if (a === '--threads') {
      o.threads = list(argv[++i], a).map(Number);
      if (o.threads.some((t) => !Number.isInteger(t) || t < 1)) usage('--threads: positive integers, e.g. 1,2');
    } else if (a === '--reps') {
      o.reps = Number(argv[++i]);
      if (!Number.isInteger(o.reps) || o.reps < 1) usage('--reps: a positive integer');
    } else if (a === '--models') {
      o.models = list(argv[++i], a);
      const bad = o.models.filter((m) => !MODELS[m]);
      if (bad.length) usage(`--models: unknown ${bad.join(', ')}; models: ${Object.keys(MODELS).join(', ')}`);
    } else if (a === '--methods') o.methods = list(argv[++i], a);
    else if (a === '--backend') o.backend = list(argv[++i], a)[0];
    else if (a === '--out') o.out = list(argv[++i], a)[0];
    else usage(`unknown option ${a}`);
  }
  const q = o.quick;
  o.reps ??= q ? 3 : 11;
  o.inner = q ? 1 : 3; // calls per round and engine (their mean is one sample)
  o.warm = q ? 1 : 3;
  o.gemmN = q ? 512 : 1024;
  o.methodRounds = q ? 3 : Math.max(7, o.reps);
  o.methodPerRound = q ? 1 : 2;
  o.warmupImages = q ? 64 : 320; // per method, before timing (fills replay memories)
  o.lame = { rounds: o.reps, inner: q ? 2 : 10 };
  o.stream = { rounds: q ? 2 : Math.max(7, o.reps), perDomain: q ? 1 : 3, inner: q ? 1 : 3 };
  return o;
}

const o = parseArgs(process.argv.slice(2));
const log = (m) => process.stderr.write(`${m}\n`);
const md = [];
const csv = [['section', 'model', 'item', 'engine', 'threads', 'metric', 'unit', 'median', 'min', 'max', 'n', 'value']];
const out = (text) => {
  console.log(`${text}\n`);
  md.push(text);
};
const row = (section, model, item, engine, threads, metric, unit, s, value = '') =>
  csv.push([section, model, item, engine, threads ?? '', metric, unit, s?.median ?? '', s?.min ?? '', s?.max ?? '', s?.n ?? '', value]);
const ips = (batch) => (ms) => (batch * 1000) / ms;
const single = (v) => ({ median: v, min: v, max: v, n: 1 }); // a figure measured once
const ratioCell = (s) => (s ? `${num(s.median, 2)} [${num(s.min, 2)}-${num(s.max, 2)}]` : '-');
const mib = (b) => (b === undefined ? '-' : num(b / MiB, 1));
const share = (ms, total) => `${Math.round((100 * ms) / total)}%`;

// ---------------------------------------------------------------- machine, backend, peer
const startedAt = new Date();
const loadStart = loadAverage();
const cpu = cpuInfo();
tf.env().set('PROD', true);
const info = await setBackend(o.backend, { threads: o.cttaThreads });
const sw = await softwareInfo(info);
let peer;
let peerNote;
if (o.peer) {
  const started = await startPeer();
  if (started.peer) {
    peer = started.peer;
    sw.torch = started.hello.torch;
    sw.torchCapability = started.hello.capability;
    sw.numpy = started.hello.numpy;
    sw.python = started.hello.python;
    sw.torchDefaultThreads = started.hello.defaultThreads;
    sw.torchBlas = started.hello.blas.join(' ') || 'none found';
  } else peerNote = `PyTorch peer missing: ${started.missing}`;
} else peerNote = 'PyTorch peer not run (--no-peer)';
if (peerNote) log(peerNote);
const peerThreads = peer ? o.threads : [];
/** Runs a peer request; a failure ends the peer for the rest of the run (noted in the report). */
async function ask(cmd, fields) {
  if (!peer) return undefined;
  try {
    return await peer.request(cmd, fields);
  } catch (err) {
    peerNote = `PyTorch peer failed (${cmd}): ${err.message}`;
    log(peerNote);
    await peer.close().catch(() => undefined);
    peer = undefined;
    return undefined;
  }
}

const header = [
  `# ctta benchmark${o.quick ? ' (QUICK SMOKE RUN: few repetitions, not a measurement)' : ''}`,
  '',
  `Started ${startedAt.toISOString()}; command: \`${process.argv.slice(2).join(' ') || '(defaults)'}\`; ${o.reps} rounds per measurement, each the mean of ${o.inner} call(s) per engine; cells are median [min-max] over rounds; ratios are ctta/PyTorch images/s (peer ms / ctta ms), median and range of the per-round ratios.`,
  '',
  `- CPU: ${cpu.model}, ${cpu.logicalCores} logical cores, ${num(cpu.memoryGiB, 1)} GiB`,
  `- SIMD flags: ${cpu.simd}`,
  `- load average (1/5/15 min) at start: ${loadStart}`,
  `- ctta ${sw.ctta} on ${sw.backend}; node ${sw.node}; tfjs ${sw.tfjs}${sw['tfjs-backend-wasm'] ? `; tfjs-backend-wasm ${sw['tfjs-backend-wasm']}` : ''}${sw.wasmSimd ? `; wasm SIMD ${sw.wasmSimd}, multithread ${sw.wasmMultithread}, threads ${sw.wasmThreads}` : ''}`,
  sw.torch
    ? `- PyTorch peer: torch ${sw.torch} (CPU capability ${sw.torchCapability}, default ${sw.torchDefaultThreads} threads; BLAS ${sw.torchBlas}), numpy ${sw.numpy}, Python ${sw.python}; peer threads ${o.threads.join(', ')}`
    : `- ${peerNote}`,
];
out(header.join('\n'));
for (const [k, v] of Object.entries({ ...sw, cpu: cpu.model, simd: cpu.simd, cores: cpu.logicalCores, loadStart, quick: o.quick, reps: o.reps }))
  row('machine', '', k, '', '', '', '', undefined, String(v));

// ---------------------------------------------------------------- passes, check, conv shapes
const tmp = mkdtempSync(join(tmpdir(), 'ctta-bench-'));
process.once('SIGINT', () => {
  rmSync(tmp, { recursive: true, force: true });
  log('bench: interrupted; nothing written (run it again)');
  process.exit(130);
});
const ratioSummary = []; // [model, pass, {threads: ratio summary}]
const passes = PASSES.filter((p) => o.only.has(p));
const wantModels = passes.length > 0 || o.only.has('check') || o.only.has('conv');
const convTables = []; // per model, printed with the GEMM ceiling
try {
  if (wantModels) {
    for (const name of o.models) await benchModel(name);
    if (o.only.has('conv')) await benchGemm();
  }
  if (o.only.has('methods') || o.only.has('analytic')) await benchMethods();
  if (o.only.has('lame')) await lameSection();
  if (o.only.has('stream')) await streamSection();
} finally {
  await peer?.close().catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
}

async function benchModel(name) {
  const batch = 64;
  log(`${name}: building`);
  const c = buildCtta(name, batch);
  perturbNorms(c.net);
  const { depth, inputShape } = MODELS[name];
  const width = c.net.spec.options.width;
  const lines = [`## ${name} (${inputShape.join('x')}), batch ${batch}`, ''];
  const built = await ask('build', { id: name, depth, width, input: inputShape, classes: 10, batch });
  if (built) {
    const same = built.params === c.trainable && built.buffers === c.buffers;
    lines.push(`Parameters: ctta ${c.trainable.toLocaleString('en-US')} trainable + ${c.buffers.toLocaleString('en-US')} BN statistics; PyTorch twin ${built.params.toLocaleString('en-US')} + ${built.buffers.toLocaleString('en-US')}: ${same ? 'equal' : 'DIFFERENT'}.`);
    row('check', name, 'parameters', 'ctta', '', 'count', '', undefined, `${c.trainable}+${c.buffers}`);
    row('check', name, 'parameters', 'pytorch', '', 'count', '', undefined, `${built.params}+${built.buffers}`);
    // Same weights into both, same input, compare.
    const w = exportWeights(c.net, tmp, name);
    if (await ask('load', { id: name, ...w })) {
      const xs = tf.randomUniform([batch, ...inputShape], 0, 1, 'float32', 11);
      const ref = cttaReference(c.net, xs);
      const theirs = await ask('check', { id: name, bin: writeTensor(xs, join(tmp, `${name}-x.bin`)), shape: [batch, ...inputShape] });
      xs.dispose();
      if (theirs) {
        const names = Object.keys(ref.grads);
        const flat = (g) => Float32Array.from(names.flatMap((k) => Array.from(g[k] ?? ref.grads[k].map(() => NaN)))); // a missing name fails
        const checks = [
          ['logits, stored BN statistics', maxDiff(ref.running, theirs.running)],
          ['logits, batch statistics', maxDiff(ref.batch, theirs.batch)],
          ['TENT entropy gradient (BN affine)', maxDiff(flat(ref.grads), flat(theirs.grads))],
        ];
        lines.push('', 'Same function: the same weights (exported from ctta) and the same input in both; logits pass when max |diff| <= 1e-4 x max(1, max |ctta logit|), the gradient when max |diff| <= 1e-2 x max |ctta gradient| (float32 reductions: the wasm kernels accumulate batch-statistic sums in float32, which costs about three digits in the backward pass of a deep net; the tfjs cpu backend, which accumulates in float64, matches PyTorch in float64 to ~1e-5 relative).', '');
        const rows = checks.map(([what, d], i) => {
          const tol = i < 2 ? 1e-4 * Math.max(1, d.scale) : 1e-2 * d.scale;
          const ok = d.diff <= tol;
          row('check', name, what, 'ctta-vs-pytorch', '', 'max_abs_diff', '', undefined, `${d.diff.toExponential(2)} (scale ${d.scale.toExponential(2)}) ${ok ? 'pass' : 'FAIL'}`);
          return [what, d.diff.toExponential(2), d.scale.toExponential(2), ok ? 'pass' : '**FAIL**'];
        });
        lines.push(table(['compared', 'max abs diff', 'max abs ctta', 'result'], rows));
      }
    }
  } else lines.push(`Parameters: ctta ${c.trainable.toLocaleString('en-US')} trainable + ${c.buffers.toLocaleString('en-US')} BN statistics (${peerNote ?? 'no peer'}).`);
  out(lines.join('\n'));

  const results = [];
  for (const pass of passes) {
    log(`${name}: ${pass}`);
    c.prepare(pass);
    const call = c.calls[pass];
    for (let i = 0; i < o.warm; i++) call();
    const ctta = [];
    const theirs = Object.fromEntries(peerThreads.map((t) => [t, []]));
    for (let r = 0; r < o.reps; r++) {
      ctta.push(timeSync(call, o.inner));
      for (const t of peerThreads) {
        const res = await ask('time', { id: name, pass, threads: t, iters: o.inner });
        if (res) theirs[t].push(res.ms);
      }
    }
    const prof = await profileCall(call, o.inner);
    const peerMem = await ask('memory', { id: name, pass });
    const peerProf = await ask('profile', { id: name, pass, threads: peerThreads[0] ?? 1, top: 6, calls: o.inner });
    results.push({ pass, ctta, theirs, prof, peerMem, peerProf });
    const s = summary(ctta);
    row('passes', name, pass, 'ctta', o.cttaThreads, 'ms_per_batch', 'ms', s);
    row('passes', name, pass, 'ctta', o.cttaThreads, 'images_per_s', 'img/s', mapSummary(s, ips(batch)));
    row('passes', name, pass, 'ctta', o.cttaThreads, 'peak_tensor_bytes', 'MiB', single(prof.peakBytes / MiB));
    for (const t of peerThreads) {
      const p = summary(theirs[t]);
      row('passes', name, pass, 'pytorch', t, 'ms_per_batch', 'ms', p);
      row('passes', name, pass, 'pytorch', t, 'images_per_s', 'img/s', mapSummary(p, ips(batch)));
      row('passes', name, pass, 'ctta/pytorch', t, 'images_per_s_ratio', '', summary(theirs[t].map((ms, i) => ms / ctta[i])));
    }
    ratioSummary.push([name, pass, Object.fromEntries(peerThreads.map((t) => [t, summary(theirs[t].map((ms, i) => ms / ctta[i]))]))]);
    if (peerMem) row('passes', name, pass, 'pytorch', '', 'peak_tensor_bytes', 'MiB', single(peerMem.peakBytes / MiB));
  }
  if (results.length > 0) {
    const hdr = ['pass', 'ctta img/s', 'ctta peak MiB'];
    for (const t of peerThreads) hdr.push(`PyTorch ${t}t img/s`);
    if (peerThreads.length) hdr.push('PyTorch peak MiB');
    for (const t of peerThreads) hdr.push(`ctta/PyTorch ${t}t`);
    const rows = results.map((r) => {
      const cells = [PASS_LABEL[r.pass], spread(mapSummary(summary(r.ctta), ips(batch)), 0), mib(r.prof.peakBytes)];
      for (const t of peerThreads) cells.push(spread(mapSummary(summary(r.theirs[t]), ips(batch)), 0));
      if (peerThreads.length) cells.push(mib(r.peerMem?.peakBytes));
      for (const t of peerThreads) cells.push(ratioCell(summary(r.theirs[t].map((ms, i) => ms / r.ctta[i]))));
      return cells;
    });
    out([`### ${name}: passes (images/s)`, '', table(hdr, rows), '', 'Peak MiB: the most tensor memory live during one call above what was live before it (ctta: tf.profile; PyTorch: the profiler\'s allocation events).'].join('\n'));

    const prow = [];
    for (const r of results) {
      const p = r.prof;
      const wall = p.wallMs;
      const top = p.kernels.slice(0, 6).map((k) => `${k.name} ${share(k.ms, wall)}`).join(', ');
      const outside = Math.max(0, wall - p.kernelMs);
      prow.push([PASS_LABEL[r.pass], 'ctta', num(summary(r.ctta).median, 1), num(wall, 1), p.timed ? `${num(p.kernelMs, 1)} (${share(p.kernelMs, wall)})` : 'no timer', p.timed ? share(outside, wall) : '-', p.timed ? top : p.kernels.slice(0, 6).map((k) => `${k.name} x${k.calls}`).join(', ')]);
      for (const k of p.kernels.slice(0, 10)) row('profile', name, r.pass, 'ctta', o.cttaThreads, `kernel:${k.name}`, 'ms', single(k.ms), `${k.calls} calls`);
      row('profile', name, r.pass, 'ctta', o.cttaThreads, 'outside_kernels', 'ms', single(outside));
      if (r.peerProf) {
        const pp = r.peerProf;
        const ptop = pp.ops.map((k) => `${k.name} ${share(k.ms, pp.totalMs)}`).join(', ');
        prow.push(['', `PyTorch ${peerThreads[0]}t`, num(summary(r.theirs[peerThreads[0]])?.median, 1), num(pp.wallMs, 1), `${num(pp.totalMs, 1)} (self CPU)`, '-', ptop]);
        for (const k of pp.ops) row('profile', name, r.pass, 'pytorch', peerThreads[0], `op:${k.name}`, 'ms', single(k.ms), `${k.calls} calls`);
      }
    }
    out([
      `### ${name}: kernel profile (${o.inner} profiled call(s) per pass, figures per call)`,
      '',
      table(['pass', 'engine', 'wall ms (timed rounds, median)', 'wall ms (profiled)', 'kernel ms (share of profiled wall)', 'outside kernels', 'top kernels, share of profiled wall (PyTorch: of self CPU)'], prow),
      '',
      `ctta: tf.profile on ${sw.backend}${sw.backend === 'wasm' ? '; the wasm backend times each kernel with a clock around its synchronous call' : ''}. Kernels ctta composes from other kernels (its Conv2DBackpropFilter/Input) count once, their parts inside them; "outside kernels" is the profiled wall time minus the kernel time: JavaScript (tape, tidy, optimizer bookkeeping) plus the profiler's own bookkeeping. PyTorch: torch.profiler self CPU time per operator (with 2+ threads self CPU can exceed wall).`,
    ].join('\n'));
  }

  if (o.only.has('conv')) await benchConv(name, c);
  c.dispose();
}

async function benchConv(name, c) {
  const shapes = convShapes(c.net, 64);
  const rows = [];
  for (const { key, shape, layers } of shapes) {
    log(`${name}: conv ${key}`);
    const calls = convCalls(shape);
    const flops = convFlops(shape);
    const cells = [key, String(layers.length), num(flops / 1e6, 0)];
    const peerCells = [];
    for (const kind of ['fwd', 'dx', 'dw']) {
      for (let i = 0; i < o.warm; i++) calls[kind]();
      const ctta = [];
      const theirs = Object.fromEntries(peerThreads.map((t) => [t, []]));
      for (let r = 0; r < o.reps; r++) {
        ctta.push(timeSync(calls[kind], o.inner));
        for (const t of peerThreads) {
          const res = await ask('conv', { shape, kind, threads: t, iters: o.inner });
          if (res) theirs[t].push(res.ms);
        }
      }
      const g = mapSummary(summary(ctta), (ms) => gflops(flops, ms));
      row('conv', name, key, 'ctta', o.cttaThreads, `${kind}_gflops`, 'GFLOP/s', g);
      cells.push(num(g.median, 1));
      for (const t of peerThreads) {
        const pg = mapSummary(summary(theirs[t]), (ms) => gflops(flops, ms));
        row('conv', name, key, 'pytorch', t, `${kind}_gflops`, 'GFLOP/s', pg);
        if (t === peerThreads[0]) peerCells.push(num(pg?.median, 1));
      }
    }
    calls.dispose();
    rows.push([...cells, ...peerCells]);
  }
  convTables.push({ name, rows });
}

async function benchGemm() {
  log(`gemm ${o.gemmN}`);
  const g = gemmCall(o.gemmN);
  for (let i = 0; i < o.warm; i++) g.call();
  const ctta = [];
  const theirs = Object.fromEntries(peerThreads.map((t) => [t, []]));
  for (let r = 0; r < o.reps; r++) {
    ctta.push(timeSync(g.call, o.inner));
    for (const t of peerThreads) {
      const res = await ask('gemm', { n: o.gemmN, threads: t, iters: o.inner });
      if (res) theirs[t].push(res.ms);
    }
  }
  g.dispose();
  const cg = mapSummary(summary(ctta), (ms) => gflops(g.flops, ms));
  row('conv', '', `matMul ${o.gemmN}^3`, 'ctta', o.cttaThreads, 'gemm_gflops', 'GFLOP/s', cg);
  const peerG = peerThreads.map((t) => {
    const pg = mapSummary(summary(theirs[t]), (ms) => gflops(g.flops, ms));
    row('conv', '', `matMul ${o.gemmN}^3`, 'pytorch', t, 'gemm_gflops', 'GFLOP/s', pg);
    return `PyTorch ${t}t ${spread(pg, 1)}`;
  });
  const lines = [
    '## Convolutions: GFLOP/s per shape (batch 64) against a plain GEMM',
    '',
    `GEMM ceiling (tf.matMul ${o.gemmN}x${o.gemmN}x${o.gemmN} on ${sw.backend}): ctta ${spread(cg, 1)} GFLOP/s${peerG.length ? `; torch.mm: ${peerG.join('; ')}` : ''}.`,
    '',
    'fwd = Conv2D, dx = input gradient (Conv2DBackpropInput), dw = filter gradient (Conv2DBackpropFilter), each 2·N·OH·OW·Co·Ci·k² FLOP; "% GEMM" = ctta fwd / ctta GEMM. PyTorch columns: the peer at its first thread count (PyTorch pads symmetrically, same FLOP).',
  ];
  for (const { name, rows } of convTables) {
    const hdr = ['shape (HxWxCi->Co k s)', 'layers', 'MFLOP', 'ctta fwd', 'ctta dx', 'ctta dw', '% GEMM (fwd)'];
    if (peerThreads.length) hdr.push(`PyTorch ${peerThreads[0]}t fwd`, 'dx', 'dw');
    const withPct = rows.map((r) => {
      const fwd = Number(r[3].replace(/,/g, ''));
      return [...r.slice(0, 6), `${Math.round((100 * fwd) / cg.median)}%`, ...r.slice(6)];
    });
    lines.push('', `### ${name}`, '', table(hdr, withPct));
  }
  out(lines.join('\n'));
}

// ---------------------------------------------------------------- methods, analytic, LAME, stream
async function benchMethods() {
  const registered = listMethods().map((d) => d.name);
  const analytic = registered.filter((n) => {
    try {
      return createMethod(n) instanceof AnalyticMethod;
    } catch {
      return false;
    }
  });
  let names = o.methods ?? registered;
  const unknown = names.filter((n) => !registered.includes(n));
  if (unknown.length) log(`skipping ${unknown.join(', ')}: not registered`);
  names = names.filter((n) => registered.includes(n));
  if (!o.only.has('methods')) names = names.filter((n) => analytic.includes(n));
  const settings = methodSettings(names);
  const all = [];
  for (const [scenario, methods] of settings) {
    log(`methods on ${scenario}: ${methods.join(', ')}`);
    const res = await benchSetting(scenario, methods, { warmupImages: o.warmupImages, rounds: o.methodRounds, perRound: o.methodPerRound }, log);
    all.push(res);
    const rows = res.rows.map((r) => {
      row('methods', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'images_per_s', 'img/s', r.ips);
      row('methods', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'ratio_to_source', '', r.ratio);
      row('methods', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'predict_ms', 'ms', r.predictMs);
      row('methods', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'adapt_ms', 'ms', r.adaptMs);
      if (r.stateBytes !== undefined) row('methods', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'state_bytes', 'MiB', single(r.stateBytes / MiB));
      if (r.peakBytes !== undefined) row('methods', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'peak_step_tensor_bytes', 'MiB', single(r.peakBytes / MiB));
      if (r.error) row('methods', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'error', '', undefined, r.error);
      const state = r.hostBytes ? `${mib(r.stateBytes)} (host ${mib(r.hostBytes)})` : mib(r.stateBytes);
      return [r.name + (r.error ? ` (failed: ${r.error})` : ''), spread(r.ips, 1), ratioCell(r.ratio), num(r.predictMs?.median, 1), num(r.adaptMs?.median, 1), state, mib(r.peakBytes)];
    });
    for (const f of res.failed) {
      rows.push([`${f.name} (could not start: ${f.error})`, '-', '-', '-', '-', '-', '-']);
      row('methods', res.scenario.name, f.name, 'ctta', o.cttaThreads, 'error', '', undefined, f.error);
    }
    if (o.only.has('methods')) {
      out([
        `## Methods on ${res.scenario.name} (batch ${res.batchSize}; model ${typeof res.scenario.model === 'string' ? res.scenario.model : `${res.scenario.model.arch}, ${res.scenario.model.init}`})`,
        '',
        table(['method', 'img/s', '/ source (same round)', 'predict ms/batch', 'adapt ms/batch', 'state MiB', 'peak tensor MiB (one step)'], rows),
        '',
        `${o.methodRounds} rounds of ${o.methodPerRound} batch(es) per method, after ${res.warmup} untimed warm-up batch(es) each (the stream's first batches); predict includes reading the probabilities back, as the runner does; source's predict is the forward pass of the same network. State: the method's stateBytes(), host = held in JS arrays outside tensors. Peak tensor MiB: tensor memory of one more step above what was live before it (tf.profile; host arrays not included).`,
      ].join('\n'));
    }
  }
  // The analytic update (adapt) against one forward of the same network (source's predict).
  const arows = [];
  for (const res of all) {
    const source = res.rows.find((r) => r.name === 'source');
    for (const r of res.rows.filter((x) => analytic.includes(x.name) && !x.error)) {
      const frac = r.adaptMs.median / source.predictMs.median;
      const beyond = Math.max(0, r.adaptMs.median - source.predictMs.median) / source.predictMs.median;
      row('analytic', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'update_over_forward', '', single(frac));
      row('analytic', res.scenario.name, r.name, 'ctta', o.cttaThreads, 'update_beyond_features_over_forward', '', single(beyond));
      arows.push([r.name, res.scenario.name, num(r.adaptMs.median, 2), num(source.predictMs.median, 2), num(frac, 2), num(beyond, 2)]);
    }
  }
  if (arows.length) {
    out(['## Analytic update as a fraction of one forward', '', table(['method', 'setting', 'update (adapt) ms/batch', 'forward ms/batch (source predict)', 'update / forward', '(update - forward) / forward'], arows), '', "Medians over the timed batches. The analytic methods' adapt recomputes the batch's backbone features (about one forward), so the last column estimates the ridge update alone."].join('\n'));
  }
}

async function lameSection() {
  log('lame');
  const res = await benchLame(o.lame, log);
  const rows = res.rows.map((r) => {
    row('lame', 'resnet8', r.label, 'ctta', o.cttaThreads, 'lame_ms', 'ms', r.ms);
    row('lame', 'resnet8', r.label, 'ctta', o.cttaThreads, 'lame_over_forward', '', r.ratio);
    return [r.label, spread(r.ms, 2), spread(r.ratio, 3)];
  });
  row('lame', 'resnet8', 'forward', 'ctta', o.cttaThreads, 'forward_ms', 'ms', res.forwardMs);
  out([`## LAME as a fraction of one forward (batch ${res.batch}, shipped ResNet-8 on the first batch of fmnist-c-continual)`, '', `Forward (features + logits): ${spread(res.forwardMs, 2)} ms.`, '', table(['affinity', 'LAME ms', 'LAME / forward (same round)'], rows)].join('\n'));
}

async function streamSection() {
  log('stream');
  const res = await benchStream(o.stream, log);
  row('stream', 'fmnist-c-continual', 'all domains', 'ctta', o.cttaThreads, 'images_per_s', 'img/s', res.overall);
  row('stream', 'fmnist-c-continual', 'model forward', 'ctta', o.cttaThreads, 'images_per_s', 'img/s', res.model);
  const rows = res.domains.map((d) => {
    row('stream', 'fmnist-c-continual', d.name, 'ctta', o.cttaThreads, 'images_per_s', 'img/s', d.ips);
    return [d.name, spread(d.ips, 0), num(d.ips.median / res.model.median, 1)];
  });
  rows.push(['**all domains**', spread(res.overall, 0), num(res.overall.median / res.model.median, 1)]);
  out([`## Stream: corruption + batching (fmnist-c-continual, batch ${res.batch}, ${o.stream.perDomain} batch(es) per domain per round, main thread)`, '', `The shipped ResNet-8's forward consumes ${spread(res.model, 0)} img/s; the stream keeps up where the ratio is > 1.`, '', table(['domain', 'stream img/s', 'stream / forward'], rows)].join('\n'));
}

// ---------------------------------------------------------------- the end: summary, load, files
if (ratioSummary.length > 0 && o.threads.some((t) => ratioSummary[0][2][t])) {
  const rows = ratioSummary.map(([model, pass, r]) => [model, PASS_LABEL[pass], ...o.threads.map((t) => ratioCell(r[t]))]);
  out(['## Summary: ctta / PyTorch images/s', '', table(['model', 'pass', ...o.threads.map((t) => `PyTorch at ${t} thread${t > 1 ? 's' : ''}`)], rows), '', `ctta runs on ${sw.backend}${sw.wasmThreads ? ` with ${sw.wasmThreads} thread(s)` : ''}.`].join('\n'));
}
const loadEnd = loadAverage();
const mem = process.memoryUsage();
const wasmHeap = tf.backend()?.wasm?.HEAPU8?.buffer?.byteLength; // only grows: the run's high-water mark
out([
  '## Run',
  '',
  `- load average at end: ${loadEnd} (start ${loadStart})`,
  `- finished ${new Date().toISOString()} (${num((Date.now() - startedAt.getTime()) / 60000, 1)} min); node RSS ${num(mem.rss / MiB, 0)} MiB (max ${num(process.resourceUsage().maxRSS / 1024, 0)} MiB)${wasmHeap ? `; wasm heap ${num(wasmHeap / MiB, 0)} MiB (it never shrinks: the high-water mark of the whole run)` : ''}; tensors live ${tf.memory().numTensors}`,
  ...(peerNote ? [`- ${peerNote}`] : []),
].join('\n'));
row('machine', '', 'loadEnd', '', '', '', '', undefined, loadEnd);
if (peerNote) row('machine', '', 'peer', '', '', '', '', undefined, peerNote);

const quote = (v) => {
  const s = typeof v === 'number' ? String(Number(v.toPrecision(6))) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};
const write = (file, text) => {
  const tmpFile = `${file}.tmp-${process.pid}`;
  writeFileSync(tmpFile, text);
  renameSync(tmpFile, file);
};
const prefix = resolve(o.out);
write(`${prefix}.md`, `${md.join('\n\n')}\n`);
write(`${prefix}.csv`, `${csv.map((r) => r.map(quote).join(',')).join('\n')}\n`);
log(`wrote ${prefix}.md and ${prefix}.csv`);
