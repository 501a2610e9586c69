// LAME's cost as a fraction of the forward pass it corrects: time of `lame(probs, feats)` per
// affinity and batch size, divided by the time of the shipped ResNet-8's forward pass (features
// and logits) on the same batch, measured in the same run on the wasm backend. The features are
// the real model's, on clean Fashion-MNIST test images.
//
//   npm run build && node bench/lame.mjs [--reps 20]
import * as tf from '@tensorflow/tfjs';
import { setBackend, loadModel, loadFashionMnist, lame } from '../dist/index.js';

const args = process.argv.slice(2);
const reps = args.includes('--reps') ? Number(args[args.indexOf('--reps') + 1]) : 20;

tf.env().set('PROD', true);
await setBackend('wasm');
const { network } = await loadModel('models/fmnist-resnet8');
const test = await loadFashionMnist('test');

function median(f) {
  for (let i = 0; i < 3; i++) f();
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

console.log('batch | affinity | forward ms | LAME ms | LAME / forward');
console.log('---|---|---|---|---');
for (const batch of [16, 64, 200]) {
  const x = tf.tidy(() => tf.tensor4d(test.images.subarray(0, batch * 784), [batch, 28, 28, 1], 'int32').toFloat().div(255));
  const forwardMs = median(() => {
    const { features, logits } = network.forward(x);
    logits.dataSync();
    tf.dispose([features, logits]);
  });
  const { features, logits } = network.forward(x);
  const probs = tf.softmax(logits);
  for (const [affinity, k] of [['knn', 1], ['knn', 5], ['rbf', 5], ['linear', 5]]) {
    const ms = median(() => {
      const { Z } = lame(probs, features, { affinity, k });
      Z.dataSync();
      Z.dispose();
    });
    console.log(`${batch} | ${affinity}${affinity === 'linear' ? '' : ` k=${k}`} | ${forwardMs.toFixed(1)} | ${ms.toFixed(1)} | ${(ms / forwardMs).toFixed(2)}`);
  }
  tf.dispose([x, features, logits, probs]);
}
network.dispose();
