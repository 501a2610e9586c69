// Images/s of ResNet-8 (28x28x1, width 16) on the wasm backend at batch 64: forward pass,
// TENT-style step (BN affine only) and full training step (all weights), with PyTorch on the
// same machine, in the same run, as the peer (Debian python3-torch, 1 thread), reported as ratios.
//
//   npm run build && node bench/resnet8.mjs [--batch 64] [--reps 20] [--no-peer]
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setBackend, createModel } from '../dist/index.js';

const args = process.argv.slice(2);
const arg = (name, def) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);
const batch = arg('--batch', 64);
const reps = arg('--reps', 20);

tf.env().set('PROD', true);
const backend = await setBackend('wasm');
const net = createModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10 });
const x = tf.randomUniform([batch, 28, 28, 1]);
const y = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32'), 10);
const opt = tf.train.sgd(0.01);

function median(f) {
  for (let i = 0; i < 3; i++) f(); // warm-up: XNNPACK operator caches, kernel JIT
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function step(vars) {
  tf.tidy(() => {
    const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, net.logits(x)), vars);
    opt.applyGradients(grads);
  });
  net.norms[0].gamma.dataSync(); // wait for the backend
}

net.setNormStatistics('running');
const forward = median(() => tf.tidy(() => void net.logits(x).dataSync()));
net.setNormStatistics('batch');
const tent = median(() => step(net.normAffineVariables()));
const full = median(() => step(net.trainableVariables()));

const ours = { forward, tent, full };
const rows = [['forward', forward], ['TENT step (BN affine)', tent], ['full training step', full]];
let peer;
if (!args.includes('--no-peer')) {
  const script = fileURLToPath(new URL('./peer_resnet8.py', import.meta.url));
  const r = spawnSync('/usr/bin/python3', [script, String(batch), String(reps)], { encoding: 'utf8' });
  if (r.status === 0) peer = JSON.parse(r.stdout.trim().split('\n').pop());
  else console.error(`PyTorch peer not run (${(r.stderr || r.error?.message || '').trim().split('\n').pop()}); install python3-torch`);
}

console.log(`ResNet-8 28x28x1, batch ${batch}, median of ${reps}; ctta on ${backend.name} (tfjs ${tf.version.tfjs})`);
console.log('| pass | ctta ms | ctta img/s |' + (peer ? ` PyTorch ${peer.version} ms (1 thread) | img/s | ctta / PyTorch speed |` : ''));
console.log('|---|---|---|' + (peer ? '---|---|---|' : ''));
for (const [name, ms] of rows) {
  const key = name.startsWith('forward') ? 'forward' : name.startsWith('TENT') ? 'tent' : 'full';
  let line = `| ${name} | ${ms.toFixed(1)} | ${((batch * 1000) / ms).toFixed(0)} |`;
  if (peer) line += ` ${peer[key].toFixed(1)} | ${((batch * 1000) / peer[key]).toFixed(0)} | ${(peer[key] / ours[key]).toFixed(2)} |`;
  console.log(line);
}
