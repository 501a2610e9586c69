// Images/s of every built-in adaptation method (predict + adapt per batch) on the same batches of
// corrupted Fashion-MNIST, in one process, one method after another, reported as a ratio to the
// Source model's forward pass measured in the same run. Run it on an otherwise idle machine: the
// img/s column of result tables comes from sweeps that may share cores.
//
//   npm run build && node bench/methods.mjs [--batches 8] [--batch 64] [--methods source,bn,...]
import * as tf from '@tensorflow/tfjs';
import { setBackend, loadModel, loadFashionMnist, loadCompanion, corruptBatch, createMethod, Rng } from '../dist/index.js';

const args = process.argv.slice(2);
const arg = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const batches = Number(arg('--batches', 8));
const batch = Number(arg('--batch', 64));
const methods = arg('--methods', 'source,bn,tent,eata,sar,lame,cotta,vida').split(',');

tf.env().set('PROD', true);
await setBackend('wasm');
const test = await loadFashionMnist('test');
const n = (batches + 1) * batch; // one extra batch to warm up
const pixels = await corruptBatch(test.images.subarray(0, n * 784), n, 28, 28, 1, 'gaussian_noise', 5, { seed: 0, startIndex: 0 });
const xs = Array.from({ length: batches + 1 }, (_, b) =>
  tf.tidy(() => tf.tensor4d(pixels.subarray(b * batch * 784, (b + 1) * batch * 784), [batch, 28, 28, 1], 'int32').toFloat().div(255)),
);

const rows = [];
for (const name of methods) {
  const { network } = await loadModel('models/fmnist-resnet8');
  const method = createMethod(name);
  await method.init({ network, rng: Rng.derive(0, 'bench', name), seed: 0, numClasses: 10, headClasses: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], dataset: 'fashion-mnist',
    companion: async (kind, path) => (await loadCompanion(network, 'models/fmnist-resnet8', kind, path)).network, // ViDA's warmed-up adapters
    // EATA's Fisher pass (clean images from the end of the test split; not timed).
    cleanImages: async (count) => tf.tidy(() => tf.tensor4d(test.images.subarray((10000 - count) * 784), [count, 28, 28, 1], 'int32').toFloat().div(255)),
  });
  const step = async (x) => {
    const p = await method.predict(x);
    await p.data();
    p.dispose();
    await method.adapt(x);
  };
  await step(xs[0]);
  const t = performance.now();
  for (let b = 1; b <= batches; b++) await step(xs[b]);
  const seconds = (performance.now() - t) / 1000;
  rows.push({ name, ips: (batches * batch) / seconds, state: method.stateBytes() / 2 ** 20 });
  method.dispose();
  network.dispose();
}
const base = rows.find((r) => r.name === 'source')?.ips;
console.log('method | img/s | / source | state MiB');
console.log('---|---|---|---');
for (const r of rows) console.log(`${r.name} | ${r.ips.toFixed(0)} | ${base ? (r.ips / base).toFixed(3) : '-'} | ${r.state.toFixed(2)}`);
tf.dispose(xs);
