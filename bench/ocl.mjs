// Images/s of the online continual-learning methods (predict + adapt with labels, per stream
// batch) as a ratio to the forward pass of the same network measured in the same run, on clean
// Fashion-MNIST batches of the OCL scenarios' size (10). The replay methods run on the scratch
// reduced ResNet-18 of fmnist-class-incremental, the analytic ones on the base5 checkpoint of
// fmnist-base5-incremental (frozen backbone). The first `--warmup` batches fill the memory and
// are not timed. Run it on an otherwise idle machine.
//
//   npm run build && node bench/ocl.mjs [--batches 30] [--warmup 30] [--methods er,onpro,acil,...]
import * as tf from '@tensorflow/tfjs';
import { setBackend, loadModel, loadFashionMnist, createMethod, createModel, listMethods, Rng } from '../dist/index.js';

const args = process.argv.slice(2);
const arg = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const batches = Number(arg('--batches', 30));
const warmup = Number(arg('--warmup', 30));
const batch = 10;
const known = new Set(listMethods().map((m) => m.name));
const replay = ['er', 'onpro', 'onpro:rotations=16'];
const analytic = ['acil', 'aef-ocl', 'ds-al'];
const methods = arg('--methods', [...replay, ...analytic].join(',')).split(',');

tf.env().set('PROD', true);
await setBackend('wasm');
const test = await loadFashionMnist('test');
const n = (warmup + batches) * batch;
const xs = Array.from({ length: warmup + batches }, (_, b) =>
  tf.tidy(() => tf.tensor4d(test.images.subarray(b * batch * 784, (b + 1) * batch * 784), [batch, 28, 28, 1], 'int32').toFloat().div(255)),
);
const ys = Array.from({ length: warmup + batches }, (_, b) => tf.tensor1d(test.labels.subarray(b * batch, (b + 1) * batch), 'int32'));
if (n > test.labels.length) throw new Error('too many batches for the test split');

/** The network a method runs on: scratch reduced ResNet-18 (replay methods) or the base5 checkpoint. */
async function networkFor(name) {
  if (analytic.includes(name.split(':')[0])) return (await loadModel('models/fmnist-resnet8-base5')).network;
  return createModel('resnet18_reduced', { inputShape: [28, 28, 1], numClasses: 10, seed: 0 });
}

/** Forward passes (softmax of the logits, read back) per second on the timed batches. */
async function forwardRate(network) {
  const run = async (x) => {
    const p = tf.tidy(() => tf.softmax(network.logits(x)));
    await p.data();
    p.dispose();
  };
  await run(xs[0]);
  const t = performance.now();
  for (let b = warmup; b < warmup + batches; b++) await run(xs[b]);
  return (batches * batch) / ((performance.now() - t) / 1000);
}

const rows = [];
for (const spec of methods) {
  const [name, ...sets] = spec.split(':');
  if (!known.has(name)) {
    console.error(`skipping ${name}: not a registered method`);
    continue;
  }
  const options = Object.fromEntries(sets.map((s) => s.split('=')).map(([k, v]) => [k, Number.isNaN(Number(v)) ? v : Number(v)]));
  const network = await networkFor(name);
  const headClasses = Array.from({ length: network.numClasses }, (_, i) => i);
  const forward = await forwardRate(network);
  const method = createMethod(name, options, 'fashion-mnist');
  // The analytic methods read only the backbone, so the base5 head (5 outputs) is fine for them.
  await method.init({ network, rng: Rng.derive(0, 'bench', spec), seed: 0, numClasses: 10, headClasses, dataset: 'fashion-mnist' });
  const step = async (b) => {
    const p = await method.predict(xs[b]);
    await p.data();
    p.dispose();
    await method.adapt(xs[b], ys[b]);
  };
  for (let b = 0; b < warmup; b++) await step(b);
  const t = performance.now();
  for (let b = warmup; b < warmup + batches; b++) await step(b);
  const ips = (batches * batch) / ((performance.now() - t) / 1000);
  rows.push({ spec, ips, forward, state: method.stateBytes() / 2 ** 20 });
  method.dispose();
  network.dispose();
}
console.log(`stream batch ${batch}, ${batches} timed batches after ${warmup}; forward = the same network's softmax(logits)`);
console.log('method | img/s | forward img/s | / forward | state MiB');
console.log('---|---|---|---|---');
for (const r of rows) console.log(`${r.spec} | ${r.ips.toFixed(1)} | ${r.forward.toFixed(0)} | ${(r.ips / r.forward).toFixed(3)} | ${r.state.toFixed(2)}`);
tf.dispose([...xs, ...ys]);
