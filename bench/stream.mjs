// Streaming throughput: images/s of reading + corrupting + batching each domain of the main
// scenario, against the images/s at which the source model consumes batches (forward pass only,
// the cheapest method) measured in the same run. The stream keeps up when the ratio is > 1.
//
//   npm run build && node bench/stream.mjs [--scenario fmnist-c-continual] [--batches 6]
import * as tf from '@tensorflow/tfjs';
import { setBackend, createModel, loadScenario, openStream, batchTensor } from '../dist/index.js';

const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const scenario = loadScenario(opt('--scenario', 'fmnist-c-continual'));
const perDomain = Number(opt('--batches', 6));

tf.env().set('PROD', true);
await setBackend('wasm');
const stream = await openStream(scenario, 0);
const net = createModel('resnet8', { inputShape: [stream.source.height, stream.source.width, stream.source.channels] });

// Model side: forward images/s on one stream batch.
const first = await stream.batch(0);
const x = batchTensor(first);
for (let i = 0; i < 3; i++) tf.tidy(() => void net.logits(x).dataSync());
let t = performance.now();
for (let i = 0; i < 10; i++) tf.tidy(() => void net.logits(x).dataSync());
const modelIps = (10 * first.y.length * 1000) / (performance.now() - t);
x.dispose();

// Stream side: per domain, the first `perDomain` batches.
const rows = [];
for (let d = 0; d < stream.ordering.domains.length; d++) {
  const ks = stream.plan.map((_, k) => k).filter((k) => stream.ordering.domain[stream.plan[k][0]] === d).slice(0, perDomain);
  t = performance.now();
  let n = 0;
  for (const k of ks) n += (await stream.batch(k)).y.length;
  rows.push([stream.ordering.domains[d].name, (n * 1000) / (performance.now() - t)]);
}
console.log(`${scenario.name}: batch ${scenario.batchSize}; model (resnet8 forward, wasm) consumes ${modelIps.toFixed(0)} img/s`);
console.log('| domain | stream img/s | stream / model |');
console.log('|---|---|---|');
for (const [name, ips] of rows) console.log(`| ${name} | ${ips.toFixed(0)} | ${(ips / modelIps).toFixed(1)} |`);
