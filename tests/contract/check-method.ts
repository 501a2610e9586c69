/**
 * The method contract checker (river's `check_estimator` idea): drives one registered method by
 * hand on the shipped Fashion-MNIST model, over small batches of real Fashion-MNIST test images
 * (every other batch corrupted with Gaussian noise, so that adapting methods move), and returns
 * what it found wrong as a list of strings, each `<check>: <what was wrong>`. An empty list means
 * the method keeps the contract of src/methods/types.ts as far as these checks can see:
 *
 *  probabilities  predict and evaluate return finite [N, K] probabilities, rows summing to 1
 *  leak           no tensor leaked: the count does not grow over 20 predict+adapt batches, is
 *                 unchanged by evaluate, and is back to the start after dispose
 *  reset          reset() restores every weight (running statistics and the method's adapters
 *                 included) bit for bit, and the next prediction equals a fresh instance's first
 *  determinism    two fresh instances with the same seed give bit-identical weights and predictions
 *  labels         a prediction does not depend on labels given after it (usesLabels methods);
 *                 adapt(x) without labels works (the others); a returned prediction never changes
 *  evaluate       evaluate() changes nothing: weights, stateBytes, diagnostics, later predictions
 *  stateBytes     stateBytes() - hostStateBytes() = the tensor bytes the method holds beyond the
 *                 model, measured with tf.memory() after init + 3 batches (within max(64 bytes, 0.5%));
 *                 stateParts(), when given, are named non-negative parts adding up to at most it
 *  diagnostics    diagnostics() is undefined or an object of finite numbers
 *  error          the method threw (the checks after that point did not run)
 *
 * Three runs of the method, one after the other (so that tf.memory() measures one at a time):
 *  M (main): init, batches 0-19 (evaluate on held-out batches after batches 1 and 3), reset, one
 *     more prediction, dispose. Memory, stateBytes, reset and the direct evaluate checks.
 *  D (twin): a fresh instance on batches 0-5, no evaluate: determinism against M on the
 *     batches before M's first evaluate, evaluate's side effects on the batches after it.
 *  L (labels, usesLabels methods only): as D, with every label of batch 2 replaced by another.
 *
 * Randomness: the context's rng is a proxy whose stream the checker restarts (same seed) right
 * after init, in every run, and again after M's reset. So a method that draws from `ctx.rng`
 * (CoTTA's and ViDA's augmented views, stochastic restore) sees the same draws after reset as a
 * fresh instance does on its first batch, and the post-reset prediction can be compared for
 * them too. A method that forks the rng (`ctx.rng.fork`) keeps streams the checker cannot
 * restart; for it the post-reset prediction is not compared (the weights still are).
 */
import * as tf from '@tensorflow/tfjs';
import { createMethod } from '../../src/methods/registry.js';
import type { AdaptationMethod, MethodContext } from '../../src/methods/types.js';
import type { Network } from '../../src/models/network.js';
import { Rng } from '../../src/util/rng.js';
import { fmnistCleanImages, fmnistImages, fmnistLabels, methodContext, useFashionMnist, useWasm } from '../helpers.js';

export type CheckName = 'probabilities' | 'leak' | 'reset' | 'determinism' | 'labels' | 'evaluate' | 'stateBytes' | 'diagnostics' | 'error';

export interface CheckSettings {
  /** Images per batch (default 16). */
  batchSize?: number;
  /** Batches of the leak run (default 20). */
  batches?: number;
  /** The seed of the context's rng (default 0). */
  seed?: number;
  /** The per-dataset defaults row the options are resolved with (default 'fashion-mnist'). */
  dataset?: MethodContext['dataset'];
}

/** The check a failure string belongs to (its prefix). */
export function checkOf(failure: string): CheckName {
  return failure.slice(0, failure.indexOf(':')) as CheckName;
}

/** The number of batches of the twin runs (D, L), and where M calls evaluate (after these batches). */
const TWIN_BATCHES = 6;
const EVALUATE_AFTER = [1, 3];
/** Batch whose labels the L run replaces. */
const LABEL_BATCH = 2;
/** First image of the held-out batches evaluate() sees (away from the stream's and the clean images'). */
const HELD_OUT_START = 3000;

/** A `ctx.rng` whose stream can be restarted from its seed; counts draws and forks. */
function restartableRng(seed: number) {
  const make = () => Rng.derive(seed, 'check-method');
  const state = { target: make(), draws: 0, forks: 0 };
  const rng = new Proxy(state.target, {
    get(_, prop) {
      const value = Reflect.get(state.target, prop, state.target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === 'fork') state.forks++;
        else state.draws++;
        return (value as (...a: unknown[]) => unknown).apply(state.target, args);
      };
    },
  });
  return {
    rng,
    restart: () => void (state.target = make()),
    get forks() {
      return state.forks;
    },
  };
}

/** Bit-level equality of two float arrays (so NaN payloads and -0 count as differences). */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Every weight of the network (running statistics and attached adapters included), copied out. */
function weights(network: Network): Map<string, Float32Array> {
  return new Map([...network.namedWeights()].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
}

/** Names of the weights that differ (bit for bit, or by presence) between two copies. */
function differing(a: Map<string, Float32Array>, b: Map<string, Float32Array>): string[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((k) => !a.has(k) || !b.has(k) || !sameBits(a.get(k)!, b.get(k)!));
}

const list = (names: string[]) => `${names.slice(0, 4).join(', ')}${names.length > 4 ? ` (+${names.length - 4} more)` : ''}`;

/** adapt(x) without labels (how the runner calls methods that do not use labels) threw. */
class AdaptWithoutLabelsError extends Error {
  constructor(override readonly cause: unknown) {
    super(errorText(cause));
  }
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

/**
 * Checks method `name` (created with `options`) against the method contract; returns the
 * failures, `[]` when there are none. Needs the wasm backend and Fashion-MNIST's test split
 * (both set up here). Leaves tf.memory() as it found it, unless the method leaks.
 */
export async function checkMethod(name: string, options: Record<string, unknown> = {}, settings: CheckSettings = {}): Promise<string[]> {
  await useWasm();
  await useFashionMnist();
  const batchSize = settings.batchSize ?? 16;
  const batches = Math.max(settings.batches ?? 20, TWIN_BATCHES);
  const seed = settings.seed ?? 0;
  const dataset = settings.dataset ?? 'fashion-mnist';

  const failures: string[] = [];
  const seen = new Set<string>();
  /** Records a failure once per `key` (a check that fails on every batch is reported once). */
  const fail = (check: CheckName, message: string, key = message) => {
    if (seen.has(`${check}|${key}`)) return;
    seen.add(`${check}|${key}`);
    failures.push(`${check}: ${message}`);
  };

  /** Stream batch b: real test images, every other batch with seeded Gaussian noise (sigma 0.3). */
  const streamBatch = (b: number): tf.Tensor4D =>
    tf.tidy(() => {
      const x = fmnistImages(b * batchSize, batchSize);
      if (b % 2 === 0) return x;
      return tf.clipByValue(tf.add(x, tf.randomNormal(x.shape, 0, 0.3, 'float32', 1000 + b)), 0, 1) as tf.Tensor4D;
    });
  const streamLabels = (b: number): tf.Tensor1D => fmnistLabels(b * batchSize, batchSize);
  const heldOut = (i: number): tf.Tensor4D => fmnistImages(HELD_OUT_START + i * batchSize, batchSize);

  const newContext = async () => {
    const rng = restartableRng(seed);
    const ctx: MethodContext = await methodContext({ rng: rng.rng, seed, dataset, cleanImages: fmnistCleanImages() });
    return { ctx, rng };
  };

  /** Check 1: finite [N, K] probabilities with rows summing to 1; returns the values. */
  const probabilities = (p: tf.Tensor, method: AdaptationMethod, ctx: MethodContext, call: 'predict' | 'evaluate', n: number): Float32Array => {
    const k = method.labelSpace === 'head' ? ctx.headClasses.length : ctx.numClasses;
    if (p.rank !== 2 || p.shape[0] !== n || p.shape[1] !== k) {
      fail('probabilities', `${call} returned shape [${p.shape.join(', ')}], not [${n}, ${k}] (labelSpace '${method.labelSpace}')`, `${call} shape`);
    }
    const v = Float32Array.from(p.dataSync());
    if (p.dtype !== 'float32') fail('probabilities', `${call} returned dtype ${p.dtype}, not float32`, `${call} dtype`);
    const bad = v.findIndex((q) => !Number.isFinite(q) || q < 0 || q > 1 + 1e-4);
    if (bad >= 0) fail('probabilities', `${call} returned ${v[bad]} (not a probability) at element ${bad}`, `${call} values`);
    const width = p.rank === 2 ? p.shape[1]! : v.length;
    for (let i = 0; width > 0 && i * width < v.length; i++) {
      let s = 0;
      for (let j = 0; j < width; j++) s += v[i * width + j]!;
      if (!(Math.abs(s - 1) <= 1e-4)) {
        fail('probabilities', `${call} row ${i} sums to ${s}, not 1 (tolerance 1e-4)`, `${call} sums`);
        break;
      }
    }
    return v;
  };

  /** Check 8: diagnostics() is undefined or an object of finite numbers. */
  const diagnostics = (method: AdaptationMethod, when: string): string | undefined => {
    if (!method.diagnostics) return undefined;
    const d = method.diagnostics();
    if (d === undefined) return 'undefined';
    if (d === null || typeof d !== 'object' || Array.isArray(d)) {
      fail('diagnostics', `diagnostics() ${when} returned ${JSON.stringify(d)}, not undefined or an object`, 'type');
      return String(d);
    }
    for (const [key, value] of Object.entries(d)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail('diagnostics', `diagnostics() ${when}: ${key} = ${String(value)} is not a finite number`, key);
    }
    return JSON.stringify(d);
  };

  /**
   * One prequential step: predict (checked), adapt (with labels for usesLabels methods, or
   * `labels` when given), diagnostics; returns the prediction read before adapt and after it.
   */
  const step = async (method: AdaptationMethod, ctx: MethodContext, b: number, labels?: (b: number) => tf.Tensor1D) => {
    const x = streamBatch(b);
    const y = method.usesLabels ? (labels ?? streamLabels)(b) : undefined;
    let p: tf.Tensor2D | undefined;
    try {
      p = await method.predict(x);
      const before = probabilities(p, method, ctx, 'predict', batchSize);
      try {
        await (y ? method.adapt(x, y) : method.adapt(x));
      } catch (err) {
        if (y) throw err;
        throw new AdaptWithoutLabelsError(err);
      }
      const after = Float32Array.from(p.dataSync());
      diagnostics(method, `after batch ${b}`);
      return { before, after };
    } finally {
      tf.dispose([x, ...(y ? [y] : []), ...(p ? [p] : [])]);
    }
  };

  // ---- Run M: memory, stateBytes, reset, evaluate's direct effects ----------------------------
  const tStart = tf.memory().numTensors;
  const m = { predictions: [] as Float32Array[], afterInit: new Map<string, Float32Array>(), atTwinEnd: new Map<string, Float32Array>() };
  const { ctx, rng } = await newContext();
  let method: AdaptationMethod | undefined;
  let phase = 'create';
  try {
    const bytesBefore = tf.memory().numBytes;
    method = createMethod(name, options, dataset);
    phase = 'init';
    await method.init(ctx);
    rng.restart();
    m.afterInit = weights(ctx.network);
    const tInit = tf.memory().numTensors;
    const counts: number[] = [];
    for (let b = 0; b < batches; b++) {
      phase = `batch ${b}`;
      const { before, after } = await step(method, ctx, b);
      if (!sameBits(before, after)) fail('labels', `the prediction of batch ${b} changed after it was returned (by adapt): max difference ${maxDiff(before, after)}`, 'alias');
      if (b < TWIN_BATCHES) m.predictions.push(before);
      counts.push(tf.memory().numTensors);

      if (b === 2) {
        // Check 7: stateBytes = the bytes beyond the model's own, measured.
        const measured = tf.memory().numBytes - bytesBefore;
        // State kept outside tensors (replay images, float64 matrices) is not in tf.memory().
        const host = method.hostStateBytes?.() ?? 0;
        const reported = method.stateBytes() - host;
        if (!(host >= 0 && reported >= 0)) fail('stateBytes', `hostStateBytes() = ${host} is not within stateBytes() = ${method.stateBytes()}`, 'host');
        if (!(Math.abs(measured - reported) <= Math.max(64, 0.005 * Math.max(measured, reported)))) {
          fail('stateBytes', `stateBytes()${host ? ' - hostStateBytes()' : ''} = ${reported} but the method holds ${measured} bytes of tensors beyond the model (after init + 3 batches)`);
        }
        // stateParts() splits stateBytes() by what holds it (table columns): named parts of it.
        const parts = method.stateParts?.();
        if (parts) {
          const bad = Object.entries(parts).find(([k, v]) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || !(Number.isFinite(v) && v >= 0));
          if (bad) fail('stateBytes', `stateParts() has ${bad[0]} = ${bad[1]} (parts are identifier names with bytes >= 0)`, 'parts');
          const sum = Object.values(parts).reduce((a, b) => a + b, 0);
          if (sum > method.stateBytes()) fail('stateBytes', `stateParts() add up to ${sum}, more than stateBytes() = ${method.stateBytes()}`, 'parts sum');
        }
      }
      if (b === TWIN_BATCHES - 1) m.atTwinEnd = weights(ctx.network);

      if (EVALUATE_AFTER.includes(b)) {
        // Check 6, directly: one evaluate() changes no weight, statistic, byte or diagnostic.
        phase = `evaluate after batch ${b}`;
        const w = weights(ctx.network);
        const bytes = method.stateBytes();
        const diag = diagnostics(method, 'before evaluate');
        const t = tf.memory().numTensors;
        const x = heldOut(b);
        const p = await method.evaluate(x);
        probabilities(p, method, ctx, 'evaluate', batchSize);
        tf.dispose([x, p]);
        const changed = differing(w, weights(ctx.network));
        if (changed.length) fail('evaluate', `evaluate() changed ${changed.length} weight(s): ${list(changed)}`, 'weights');
        if (method.stateBytes() !== bytes) fail('evaluate', `evaluate() changed stateBytes() from ${bytes} to ${method.stateBytes()}`, 'bytes');
        if (diagnostics(method, 'after evaluate') !== diag) fail('evaluate', `evaluate() changed diagnostics() from ${diag} to ${diagnostics(method, 'after evaluate')}`, 'diagnostics');
        if (tf.memory().numTensors !== t) fail('leak', `evaluate() left ${tf.memory().numTensors - t} tensor(s) behind (its result disposed)`, 'evaluate');
      }
    }

    // Check 2: the number of tensors does not grow with the number of batches. Not "the count
    // after every batch equals the count after the first": a method may hold state part of the
    // time - SAR drops its optimizer (momentum buffers, 20 tensors here) on each recovery and
    // recreates it on the next step, so its count moves between two values as the loss average
    // crosses resetConstant. A leak grows without bound: the second half of the batches then ends
    // above anything the first half reached. (Leaked tensors nothing owns are also caught
    // exactly after dispose, below.)
    const half = Math.floor(batches / 2);
    const bound = Math.max(tInit, ...counts.slice(0, half));
    const grown = counts.findIndex((c, i) => i >= half && c > bound);
    if (grown >= 0) {
      fail('leak', `the number of tensors grows with the batches: after init ${tInit}, after each batch ${counts.join(' ')} (batch ${grown}: ${counts[grown]} > ${bound}, the most before batch ${half})`, 'batches');
    }

    // Check 3: reset restores every weight; the next prediction is a fresh instance's first.
    phase = 'reset';
    await method.reset();
    rng.restart();
    const changed = differing(m.afterInit, weights(ctx.network));
    if (changed.length) fail('reset', `after reset() ${changed.length} weight(s) differ from their values right after init: ${list(changed)}`);
    const tReset = tf.memory().numTensors;
    if (tReset > bound) fail('leak', `after reset() ${tReset} tensors, more than after init (${tInit}) or any of the first ${half} batches (at most ${bound})`, 'reset');
    phase = 'predict after reset';
    const x = streamBatch(0);
    const p = await method.predict(x);
    const again = probabilities(p, method, ctx, 'predict', batchSize);
    tf.dispose([x, p]);
    if (rng.forks > 0) {
      // The method forked ctx.rng: its forked streams are not restarted, so a fresh instance's
      // first prediction is not what reset() must reproduce. Not compared.
    } else if (!sameBits(again, m.predictions[0]!)) {
      fail('reset', `the first prediction after reset() differs from a fresh instance's first prediction on the same batch (same seed): max difference ${maxDiff(again, m.predictions[0]!)}`);
    }
  } catch (err) {
    if (err instanceof AdaptWithoutLabelsError) fail('labels', `adapt(x) without labels threw at ${phase}: ${errorText(err.cause)}`);
    else fail('error', `${name} threw during ${phase} (run M): ${errorText(err)}`);
  } finally {
    // Check 2, end: dispose (method, then the network, as the runner does) frees everything.
    try {
      method?.dispose();
    } catch (err) {
      fail('error', `${name} threw in dispose(): ${errorText(err)}`);
    }
    ctx.network.dispose();
  }
  if (tf.memory().numTensors !== tStart) fail('leak', `${tf.memory().numTensors - tStart} tensor(s) left after dispose() and the network's disposal`, 'dispose');
  if (failures.some((f) => checkOf(f) === 'error' || /adapt\(x\) without labels threw/.test(f))) return failures;

  // ---- Run D (twin: no evaluate) and, for label methods, run L (batch 2's labels replaced) ---
  const twin = async (labels?: (b: number) => tf.Tensor1D) => {
    const { ctx, rng } = await newContext();
    const method = createMethod(name, options, dataset);
    try {
      await method.init(ctx);
      rng.restart();
      const afterInit = weights(ctx.network);
      const predictions: Float32Array[] = [];
      const readAfterAdapt: Float32Array[] = [];
      for (let b = 0; b < TWIN_BATCHES; b++) {
        const { before, after } = await step(method, ctx, b, labels);
        predictions.push(before);
        readAfterAdapt.push(after);
      }
      return { afterInit, predictions, readAfterAdapt, atEnd: weights(ctx.network) };
    } finally {
      method.dispose();
      ctx.network.dispose();
    }
  };

  let d: Awaited<ReturnType<typeof twin>>;
  try {
    d = await twin();
  } catch (err) {
    fail('error', `${name} threw in a second instance (run D): ${errorText(err)}`);
    return failures;
  }
  // Check 4: determinism, on the batches before M's first evaluate().
  const initDiffers = differing(m.afterInit, d.afterInit);
  if (initDiffers.length) fail('determinism', `two fresh instances (same seed) have different weights after init: ${list(initDiffers)}`);
  const firstEvaluate = EVALUATE_AFTER[0]!;
  let deterministic = initDiffers.length === 0;
  for (let b = 0; b <= firstEvaluate; b++) {
    if (!sameBits(m.predictions[b]!, d.predictions[b]!)) {
      fail('determinism', `two fresh instances (same seed) predict batch ${b} differently: max difference ${maxDiff(m.predictions[b]!, d.predictions[b]!)}`);
      deterministic = false;
      break;
    }
  }
  // Check 6, across runs: M called evaluate() in between, D did not; everything after must agree.
  // (Only meaningful when the two runs agree before the first evaluate.)
  if (deterministic) {
    for (let b = firstEvaluate + 1; b < TWIN_BATCHES; b++) {
      if (!sameBits(m.predictions[b]!, d.predictions[b]!)) {
        fail('evaluate', `after evaluate() calls, the prediction of batch ${b} differs from a twin run without them: max difference ${maxDiff(m.predictions[b]!, d.predictions[b]!)}`);
        break;
      }
    }
    const changed = differing(m.atTwinEnd, d.atEnd);
    if (changed.length) fail('evaluate', `after evaluate() calls, ${changed.length} weight(s) differ from a twin run without them (after batch ${TWIN_BATCHES - 1}): ${list(changed)}`);
  }

  // Check 5: a prediction does not depend on the labels given after it.
  if (method?.usesLabels) {
    // Every label of batch LABEL_BATCH replaced by another class.
    const replaced = (b: number) => (b === LABEL_BATCH ? (tf.tidy(() => tf.cast(tf.mod(tf.add(streamLabels(b), 1), ctx.numClasses), 'int32')) as tf.Tensor1D) : streamLabels(b));
    try {
      const l = await twin(replaced);
      // Batch LABEL_BATCH's prediction, read after adapt had its labels, is the same whichever
      // labels adapt had: it cannot depend on them (they come after it).
      const [a, b] = [d.readAfterAdapt[LABEL_BATCH]!, l.readAfterAdapt[LABEL_BATCH]!];
      if (deterministic && !sameBits(a, b)) {
        fail('labels', `the prediction of batch ${LABEL_BATCH} depends on its own labels, given after it (replaced by others in a sibling run): max difference ${maxDiff(a, b)}`);
      }
    } catch (err) {
      fail('error', `${name} threw with replaced labels (run L): ${errorText(err)}`);
    }
  }
  return failures;
}
