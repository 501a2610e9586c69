#!/usr/bin/env node
// EAR's out-of-distribution detector as a diagnostic: the AUROC between clean Fashion-MNIST test
// images (the source domain) and each of the 15 corruptions of fmnist-c-continual at its
// severity (5), with HDFF's OOD score (EarMethod.oodScores: minus the best cosine similarity to
// a source class descriptor; higher = more out-of-distribution).
//
//   npm run build && node scripts/ear-auroc.mjs [--images 1000] [--seed 0] [--out results/fmnist-ear-auroc.md]
//
// EAR is set up exactly as a run of scenario fmnist-domain-incremental with that seed sets it up
// (openRun: default options, the shipped models/fmnist-resnet8, the run's method rng, and
// calibration on the run's `cleanImages`: a seeded draw of `calibrationSize` test images). The
// scored images are the first N test images (in index order) that are not calibration images;
// each corruption reads the same N images through the scenario source's corruption engine,
// seeded with the same seed (as that run's stream would corrupt them). The markdown file holds no
// time or machine detail, so the same command writes the same file; progress goes to stderr.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { CLEAN_CORRUPTION, auroc, cleanImageIndices, cleanImageSource, describeModel, loadScenario, openRun, setBackend } from '../dist/index.js';

const CALIBRATION_SCENARIO = 'fmnist-domain-incremental';
const CORRUPTION_SCENARIO = 'fmnist-c-continual';
const DEFAULTS = { images: 1000, seed: 0, out: 'results/fmnist-ear-auroc.md' };
const USAGE = `usage: node scripts/ear-auroc.mjs [--images N] [--seed S] [--out FILE]

EAR's OOD-detection AUROC, clean Fashion-MNIST test images vs each corruption of
${CORRUPTION_SCENARIO} (severity 5), EAR set up as in a ${CALIBRATION_SCENARIO} run.

  --images N  images per domain: the first N test images not used for calibration (default ${DEFAULTS.images})
  --seed S    the run's seed: EAR's projection, calibration draw and corruptions (default ${DEFAULTS.seed})
  --out FILE  markdown table to write (default ${DEFAULTS.out})
  --help      this text
`;

function usageError(message) {
  process.stderr.write(`ear-auroc: ${message} (see --help)\n`);
  process.exit(2);
}

function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { images: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' } },
    });
  } catch (err) {
    usageError(err.message.split('\n')[0]);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name, value, min) => {
    if (value === undefined) return DEFAULTS[name];
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) usageError(`--${name} must be an integer >= ${min}, got "${value}"`);
    return Number(value);
  };
  const out = v.out ?? DEFAULTS.out;
  if (out.trim() === '') usageError('--out must name a file');
  return { images: int('images', v.images, 1), seed: int('seed', v.seed, 0), out };
}

const log = (msg) => process.stderr.write(`${msg}\n`);
const seconds = (t0) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

/** OOD scores of `indices` under `domain`, read from the run's source, in batches of the scenario's size. */
async function score(method, source, indices, domain, batchSize) {
  const out = new Float32Array(indices.length);
  const { height: h, width: w, channels: c } = source;
  for (let i = 0; i < indices.length; i += batchSize) {
    const idx = indices.subarray(i, Math.min(i + batchSize, indices.length));
    const pixels = await source.read(idx, domain);
    // The stream's conversion (pixelsTensor): uint8 -> float in [0, 1].
    const x = tf.tidy(() => tf.tensor4d(pixels, [idx.length, h, w, c], 'int32').toFloat().div(255));
    try {
      out.set(method.oodScores(x), i);
    } finally {
      x.dispose();
    }
  }
  return out;
}

const mean = (a) => a.reduce((s, v) => s + v, 0) / a.length;

async function main() {
  const o = parseOptions(process.argv.slice(2));
  const t0 = performance.now();
  tf.env().set('PROD', true);
  await setBackend('wasm');
  const calScenario = loadScenario(CALIBRATION_SCENARIO);
  const corrScenario = loadScenario(CORRUPTION_SCENARIO);
  if (JSON.stringify(calScenario.model) !== JSON.stringify(corrScenario.model) || calScenario.dataset !== corrScenario.dataset || calScenario.split !== corrScenario.split) {
    throw new Error(`${CALIBRATION_SCENARIO} and ${CORRUPTION_SCENARIO} no longer share model, dataset and split`);
  }
  const domains = corrScenario.domains.filter((d) => d.corruption !== CLEAN_CORRUPTION);

  const tensorsBefore = tf.memory().numTensors;
  log(`setting up ear as a ${CALIBRATION_SCENARIO} run, seed ${o.seed}`);
  const run = await openRun({ scenario: calScenario, method: 'ear', seed: o.seed });
  let text;
  try {
    const { method, stream, header } = run;
    const source = stream.source;
    const n = source.labels.length;
    const calibrationSize = method.options.calibrationSize;
    // The run's calibration draw, checked below against the images the run's context gives.
    const calibration = cleanImageIndices(n, o.seed, calibrationSize);
    const calibrationSet = new Set(calibration);
    const available = n - calibrationSet.size;
    if (o.images > available) usageError(`--images ${o.images}: only ${available} test images are not calibration images`);
    const scored = new Int32Array(o.images);
    for (let i = 0, k = 0; k < o.images; i++) if (!calibrationSet.has(i)) scored[k++] = i;

    const clean = { name: 'clean', corruption: CLEAN_CORRUPTION, severity: 0 };
    let duplicates = 0;
    {
      // The calibration indices are those the run used: same pixels as its cleanImages.
      const given = await cleanImageSource(calScenario, stream, o.seed, {})(calibrationSize);
      const rounded = tf.tidy(() => tf.round(tf.mul(given, 255)));
      const bytes = Uint8Array.from(rounded.dataSync());
      tf.dispose([given, rounded]);
      const expected = await source.read(calibration, clean);
      if (bytes.length !== expected.length || bytes.some((b, i) => b !== expected[i])) {
        throw new Error('the calibration images are not the ones this script excludes: streams/clean-images.ts changed its draw; update the script');
      }
      // Fashion-MNIST has a few exact duplicates: count scored images identical to a calibration image.
      const size = source.height * source.width * source.channels;
      const key = (px, i) => Buffer.from(px.buffer, px.byteOffset + i * size, size).toString('base64');
      const calKeys = new Set(Array.from(calibration, (_, i) => key(expected, i)));
      const scoredPx = await source.read(scored, clean);
      duplicates = scored.reduce((s, _, i) => s + (calKeys.has(key(scoredPx, i)) ? 1 : 0), 0);
    }
    log(`calibration: ${calibration.length} test images (seeded draw); scoring test images ${scored[0]}..${scored[scored.length - 1]} minus calibration (${o.images}, no overlap; ${duplicates} pixel-identical to a calibration image)`);

    const tensorsSetUp = tf.memory().numTensors;
    const batchSize = calScenario.batchSize;
    let t = performance.now();
    const cleanScores = await score(method, source, scored, clean, batchSize);
    log(`clean: ${o.images} images, ${seconds(t)}`);
    const rows = [];
    for (const [k, d] of domains.entries()) {
      t = performance.now();
      const s = await score(method, source, scored, d, batchSize);
      rows.push({ name: d.corruption, severity: d.severity, auroc: auroc(cleanScores, s), meanOut: mean(s) });
      log(`${k + 1}/${domains.length} ${d.corruption}: AUROC ${rows.at(-1).auroc.toFixed(4)}, ${seconds(t)}`);
    }
    const leaked = tf.memory().numTensors - tensorsSetUp;
    if (leaked !== 0) throw new Error(`scoring leaked ${leaked} tensors`);

    const severities = [...new Set(rows.map((r) => r.severity))].join(', ');
    const meanIn = mean(cleanScores);
    const f = (v) => v.toFixed(4);
    const lines = [
      `# EAR OOD detection: clean Fashion-MNIST vs each corruption (severity ${severities})`,
      '',
      `Generated by \`node scripts/ear-auroc.mjs --images ${o.images} --seed ${o.seed} --out ${o.out}\`: seed ${o.seed}, model ${describeModel(calScenario.model)} (hash ${header.modelHash.slice(0, 12)}), ${o.images} images per domain.`,
      '',
      `EAR with its default options, set up as in a ${CALIBRATION_SCENARIO} run with seed ${o.seed} (source class descriptors from ${calibration.length} clean test images, a seeded draw). ` +
        `Scored: the first ${o.images} ${calScenario.split} images (indices ${scored[0]} to ${scored[scored.length - 1]}) that are not calibration images, clean and under each corruption of ${CORRUPTION_SCENARIO} ` +
        `(the corruption engine, seed ${o.seed}); ${duplicates} of them are pixel-identical to a calibration image (duplicates in the split). ` +
        `OOD score: HDFF's, minus the best cosine similarity to a source class descriptor (higher = more out-of-distribution); AUROC with the corrupted images as positives (0.5 = chance).`,
      '',
      '| corruption | AUROC | mean OOD score, clean | mean OOD score, corrupted |',
      '|---|---:|---:|---:|',
      ...rows.map((r) => `| ${r.name} | ${f(r.auroc)} | ${f(meanIn)} | ${f(r.meanOut)} |`),
      `| **mean** | **${f(mean(rows.map((r) => r.auroc)))}** | ${f(meanIn)} | ${f(mean(rows.map((r) => r.meanOut)))} |`,
      '',
    ];
    text = lines.join('\n');
  } finally {
    run.dispose();
  }
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked !== 0) throw new Error(`${leaked} tensors left after disposing the run`);
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, text);
  log(`wrote ${o.out} in ${seconds(t0)} (tensors: ${tf.memory().numTensors} before and after)`);
}

main().catch((err) => {
  process.stderr.write(`ear-auroc: ${err.message.split('\n')[0]}\n`);
  process.exit(1);
});
