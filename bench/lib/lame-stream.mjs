// LAME's correction as a fraction of the forward pass it corrects, and the stream's own speed
// (reading + corrupting + batching into a tensor) against the model's forward pass.
import * as tf from '@tensorflow/tfjs';
import { batchTensor, lame, loadModel, loadScenario, openStream } from '../../dist/index.js';
import { summary, timeSync } from './stats.mjs';

const MODEL = 'models/fmnist-resnet8';
const SCENARIO = 'fmnist-c-continual';
export const LAME_VARIANTS = [
  { label: 'rbf k=5 (default)', affinity: 'rbf', k: 5 },
  { label: 'knn k=1', affinity: 'knn', k: 1 },
  { label: 'knn k=5', affinity: 'knn', k: 5 },
  { label: 'linear', affinity: 'linear', k: 5 },
];

/** LAME ms per batch (first batch of fmnist-c-continual, real ResNet-8 features) / forward ms, per round. */
export async function benchLame(o, log) {
  const { network } = await loadModel(MODEL);
  const stream = await openStream(loadScenario(SCENARIO), 0);
  const x = batchTensor(await stream.batch(0));
  const forward = () => {
    const { features, logits } = network.forward(x);
    logits.dataSync();
    tf.dispose([features, logits]);
  };
  const { features, logits } = network.forward(x);
  const probs = tf.softmax(logits);
  const calls = LAME_VARIANTS.map((v) => () => {
    const { Z } = lame(probs, features, { affinity: v.affinity, k: v.k });
    Z.dataSync();
    Z.dispose();
  });
  forward();
  calls.forEach((c) => c());
  const fwd = [];
  const ms = LAME_VARIANTS.map(() => []);
  const ratio = LAME_VARIANTS.map(() => []);
  for (let r = 0; r < o.rounds; r++) {
    log(`  lame: round ${r + 1}/${o.rounds}`);
    const f = timeSync(forward, o.inner);
    fwd.push(f);
    calls.forEach((c, i) => {
      const t = timeSync(c, o.inner);
      ms[i].push(t);
      ratio[i].push(t / f);
    });
  }
  tf.dispose([x, features, logits, probs]);
  network.dispose();
  return { batch: x.shape[0], forwardMs: summary(fwd), rows: LAME_VARIANTS.map((v, i) => ({ ...v, ms: summary(ms[i]), ratio: summary(ratio[i]) })) };
}

/**
 * Per round: for each domain of fmnist-c-continual, `perDomain` batches read, corrupted and made
 * into float tensors one after another (no look-ahead); and the model's forward img/s on a batch.
 */
export async function benchStream(o, log) {
  const scenario = loadScenario(SCENARIO);
  const stream = await openStream(scenario, 0);
  const { network } = await loadModel(MODEL);
  const domains = stream.ordering.domains.map((d, i) => ({
    name: d.name,
    ks: stream.plan.map((_, k) => k).filter((k) => stream.ordering.domain[stream.plan[k][0]] === i).slice(0, o.perDomain),
    ips: [],
  }));
  const x = batchTensor(await stream.batch(0));
  const forward = () => tf.tidy(() => void network.logits(x).dataSync());
  forward();
  const model = [];
  const overall = [];
  for (let r = 0; r < o.rounds; r++) {
    log(`  stream: round ${r + 1}/${o.rounds}`);
    model.push((x.shape[0] * 1000) / timeSync(forward, o.inner));
    let images = 0;
    let ms = 0;
    for (const d of domains) {
      const t = performance.now();
      let n = 0;
      for (const k of d.ks) {
        const b = await stream.batch(k);
        batchTensor(b).dispose();
        n += b.y.length;
      }
      const dt = performance.now() - t;
      d.ips.push((n * 1000) / dt);
      images += n;
      ms += dt;
    }
    overall.push((images * 1000) / ms);
  }
  x.dispose();
  network.dispose();
  return { batch: scenario.batchSize, model: summary(model), overall: summary(overall), domains: domains.map((d) => ({ name: d.name, ips: summary(d.ips) })) };
}
