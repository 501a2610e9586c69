#!/usr/bin/env node
// Before/after of an optimisation: the same passes timed with two builds of ctta, in alternating
// child processes (A, B, A, B, ...), so both see the same machine state.
//
//   git worktree add /tmp/before <rev> && (cd /tmp/before && npm ci && npm run build)
//   node bench/ab.mjs /tmp/before/dist dist [--rounds 3]
//
// Passes (batch 64): forward with stored BN statistics, forward with batch statistics (BN-adapt),
// and a TENT step (entropy gradient in the BN affine parameters + Adam), on ResNet-8 (28x28x1)
// and ResNet-20 (32x32x3). Each child times every pass 9 times after one warm-up call; the table
// shows, per pass, the best time of each build over all rounds (the least disturbed one) and
// B's speed-up. Run it on an otherwise idle machine.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = '--child';

async function child(dist) {
  const tf = await import('@tensorflow/tfjs');
  const { setBackend } = await import(`${dist}/backend/index.js`);
  const { createModel } = await import(`${dist}/models/registry.js`);
  tf.env().set('PROD', true);
  await setBackend('wasm');
  const out = {};
  for (const [name, shape] of [['resnet8', [28, 28, 1]], ['resnet20', [32, 32, 3]]]) {
    const net = createModel(name, { inputShape: shape, seed: 1 });
    const x = tf.randomUniform([64, ...shape], 0, 1, 'float32', 3);
    const adam = tf.train.adam(1e-3);
    const affine = net.normAffineVariables();
    const entropy = () =>
      tf.tidy(() => {
        const logits = net.logits(x);
        return tf.neg(tf.mean(tf.sum(tf.mul(tf.softmax(logits), tf.logSoftmax(logits)), 1)));
      });
    const passes = {
      forward: () => {
        net.setNormStatistics('running');
        tf.tidy(() => net.logits(x).dataSync());
      },
      'bn-adapt': () => {
        net.setNormStatistics('batch');
        tf.tidy(() => net.logits(x).dataSync());
      },
      'tent step': () => {
        net.setNormStatistics('batch');
        const { value, grads } = tf.variableGrads(entropy, affine);
        adam.applyGradients(grads);
        value.dataSync();
        tf.dispose([value, ...Object.values(grads)]);
      },
    };
    for (const [pass, f] of Object.entries(passes)) {
      f();
      const times = [];
      for (let r = 0; r < 9; r++) {
        const t0 = performance.now();
        f();
        times.push(performance.now() - t0);
      }
      out[`${name} ${pass}`] = Math.min(...times);
    }
    adam.dispose();
    tf.dispose(x);
    net.dispose();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function main(argv) {
  const args = argv.slice(2);
  if (args[0] === CHILD) return child(args[1]);
  if (args.includes('--help') || args.length < 2) {
    process.stdout.write('usage: node bench/ab.mjs DIST_A DIST_B [--rounds N]   (DIST = a built dist/ directory)\n');
    process.exit(args.includes('--help') ? 0 : 2);
  }
  const [a, b] = args.slice(0, 2).map((d) => resolve(d));
  const rounds = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 3;
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write('ab: --rounds must be a positive integer\n');
    process.exit(2);
  }
  const best = { A: {}, B: {} };
  const self = fileURLToPath(import.meta.url);
  for (let r = 0; r < rounds; r++) {
    for (const [label, dist] of [['A', a], ['B', b]]) {
      process.stderr.write(`round ${r + 1}/${rounds}: ${label} (${dist})\n`);
      const p = spawnSync(process.execPath, [self, CHILD, dist], { encoding: 'utf8' });
      if (p.status !== 0) {
        process.stderr.write(`ab: the ${label} build failed: ${(p.stderr || '').trim().split('\n').at(-1)}\n`);
        process.exit(1);
      }
      for (const [k, v] of Object.entries(JSON.parse(p.stdout.trim().split('\n').at(-1)))) best[label][k] = Math.min(best[label][k] ?? Infinity, v);
    }
  }
  const rows = Object.keys(best.A).map((k) => `| ${k} | ${best.A[k].toFixed(1)} | ${best.B[k].toFixed(1)} | ${(best.A[k] / best.B[k]).toFixed(2)}x |`);
  process.stdout.write(`A = ${a}\nB = ${b}\n\n| pass (batch 64) | A ms | B ms | B speed-up |\n|---|---|---|---|\n${rows.join('\n')}\n`);
}

await main(process.argv);
