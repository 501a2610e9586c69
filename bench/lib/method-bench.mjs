// Every registered method's predict + adapt per stream batch, as the runner does it, on the
// setting of the scenarios it is run on: the test-time methods on fmnist-c-continual (the shipped
// ResNet-8, batch 64), the labelled (online continual-learning) ones on the first shipped
// Fashion-MNIST scenario that lists them (ER/OnPro: fmnist-class-incremental, scratch reduced
// ResNet-18, batch 10; ACIL/AEF-OCL/DS-AL: fmnist-base5-incremental; EAR:
// fmnist-domain-incremental), else fmnist-class-incremental (UER, TAME, as the reference sweeps
// run them). Each setting also runs `source`, the reference: its predict is the forward pass of
// the same network. All methods of a setting are open at once and take turns in every round.
import { readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { batchTensor, listMethods, loadScenario, openRun, scenariosDir } from '../../dist/index.js';
import { profileCall } from './kernels.mjs';
import { summary } from './stats.mjs';

const TTA_SCENARIO = 'fmnist-c-continual';
const OCL_FALLBACK = 'fmnist-class-incremental';

/** The scenario each method runs on: { scenarioName: [method names] } for the given methods. */
export function methodSettings(names) {
  const shipped = readdirSync(scenariosDir())
    .filter((f) => f.startsWith('fmnist-') && f.endsWith('.json'))
    .sort()
    .map((f) => loadScenario(f.replace(/\.json$/, '')));
  const settings = new Map();
  for (const def of listMethods()) {
    if (!names.includes(def.name) || def.name === 'source') continue;
    const scenario = def.usesLabels ? (shipped.find((s) => s.methods.includes(def.name))?.name ?? OCL_FALLBACK) : TTA_SCENARIO;
    settings.set(scenario, [...(settings.get(scenario) ?? []), def.name]);
  }
  return settings;
}

/**
 * Runs one setting: ceil(warmupImages / batch size) batches per method (not timed; fills replay memories), then `rounds`
 * rounds in which every method processes the next `perRound` batches in turn. Returns rows with
 * per-round img/s, the ratio to source in the same round, predict/adapt ms per batch, state and
 * the peak tensor bytes of one more step (tf.profile).
 */
export async function benchSetting(scenarioName, methodNames, o, log) {
  const scenario = loadScenario(scenarioName);
  o = { ...o, warmup: Math.max(1, Math.ceil(o.warmupImages / scenario.batchSize)) };
  const names = ['source', ...methodNames.filter((m) => m !== 'source')];
  const runs = [];
  const failed = [];
  for (const name of names) {
    try {
      log(`  ${scenarioName}: opening ${name}`);
      runs.push({ name, run: await openRun({ scenario, method: name, seed: 0 }), rounds: [], predictMs: [], adaptMs: [] });
    } catch (err) {
      failed.push({ name, error: err.message.split('\n')[0] });
    }
  }
  if (runs.length === 0 || runs[0].name !== 'source') {
    for (const r of runs) r.run.dispose();
    return { scenario, rows: [], failed, batchSize: scenario.batchSize, warmup: o.warmup };
  }
  const stream = runs[0].run.stream;
  const need = o.warmup + o.rounds * o.perRound + 1;
  if (need > stream.numBatches) throw new Error(`${scenarioName} has ${stream.numBatches} batches, the benchmark needs ${need}`);
  const batches = [];
  for (let k = 0; k < need; k++) {
    const b = await stream.batch(k);
    batches.push({ x: batchTensor(b), y: tf.tensor1d(b.y, 'int32'), n: b.y.length });
  }
  const step = async (r, b) => {
    const t0 = performance.now();
    const out = await r.run.method.predict(b.x);
    const probs = r.run.labels.toDataset(out);
    await probs.data();
    probs.dispose();
    const t1 = performance.now();
    if (r.run.method.usesLabels) await r.run.method.adapt(b.x, b.y);
    else await r.run.method.adapt(b.x);
    return [t1 - t0, performance.now() - t1];
  };
  const alive = (r) => !r.error;
  const guarded = async (r, f) => {
    try {
      await f();
    } catch (err) {
      r.error = err.message.split('\n')[0];
    }
  };
  for (const r of runs) await guarded(r, async () => {
    for (let k = 0; k < o.warmup; k++) await step(r, batches[k]);
  });
  for (let round = 0; round < o.rounds; round++) {
    log(`  ${scenarioName}: round ${round + 1}/${o.rounds}`);
    for (const r of runs.filter(alive)) {
      await guarded(r, async () => {
        let images = 0;
        let ms = 0;
        for (let j = 0; j < o.perRound; j++) {
          const b = batches[o.warmup + round * o.perRound + j];
          const [p, a] = await step(r, b);
          r.predictMs.push(p);
          r.adaptMs.push(a);
          ms += p + a;
          images += b.n;
        }
        r.rounds[round] = (images * 1000) / ms;
      });
    }
  }
  const source = runs[0];
  const extra = batches[need - 1];
  const rows = [];
  for (const r of runs) {
    let peakBytes;
    if (alive(r)) await guarded(r, async () => (peakBytes = (await profileCall(() => step(r, extra))).peakBytes));
    const ratios = r.rounds.map((ips, i) => ips / source.rounds[i]).filter(Number.isFinite);
    rows.push({
      name: r.name,
      error: r.error,
      usesLabels: r.run.method.usesLabels,
      ips: summary(r.rounds),
      ratio: summary(ratios),
      predictMs: summary(r.predictMs),
      adaptMs: summary(r.adaptMs),
      stateBytes: safe(() => r.run.method.stateBytes()),
      hostBytes: safe(() => r.run.method.hostStateBytes?.() ?? 0),
      peakBytes,
    });
    r.run.dispose();
  }
  for (const b of batches) tf.dispose([b.x, b.y]);
  return { scenario, rows, failed, batchSize: scenario.batchSize, warmup: o.warmup };
}

function safe(f) {
  try {
    return f();
  } catch {
    return undefined;
  }
}
