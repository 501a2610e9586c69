/** Shared test set-up: the wasm backend (the project's default here) and small utilities. */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setBackend } from '../src/backend/index.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export async function useWasm(): Promise<void> {
  tf.env().set('PROD', true);
  await setBackend('wasm');
}

/**
 * Runs the built CLI (`npm test` builds dist/ first) in a child process, as a user would;
 * returns exit code and output.
 */
export function runCli(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 600_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** The CttaError a promise rejects with (one line, as the CLI prints it); fails the test otherwise. */
export async function rejection(p: Promise<unknown>): Promise<import('../src/errors.js').CttaError> {
  const { CttaError } = await import('../src/errors.js');
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof CttaError)) throw new Error(`expected a CttaError, got ${err === undefined ? 'success' : String(err)}`);
  if (err.message.includes('\n')) throw new Error(`the message has several lines: ${err.message}`);
  return err;
}

/** Asserts that `fn` throws a CttaError whose printed line (message + fix) matches `pattern`. */
export async function expectCttaError(fn: () => unknown, pattern: RegExp): Promise<void> {
  const { CttaError } = await import('../src/errors.js');
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof CttaError)) throw new Error(`expected a CttaError matching ${pattern}, got ${String(caught)}`);
  if (!pattern.test(caught.toLine())) throw new Error(`"${caught.toLine()}" does not match ${pattern}`);
}

/**
 * A method context as `ctta run` gives one, for tests that drive a method by hand: the shipped
 * Fashion-MNIST model (or `network`), seeded rng, K = 10, identity head, CIFAR-10 defaults row.
 * `companionsOf` is the model path the run set-up looks for companions beside (ViDA's
 * `<model>-vida`); default: the shipped model's.
 */
export async function methodContext(
  extra: Partial<import('../src/methods/types.js').MethodContext> = {},
  { companionsOf }: { companionsOf?: string } = {},
): Promise<import('../src/methods/types.js').MethodContext> {
  const { loadModel } = await import('../src/models/checkpoint.js');
  const { Rng } = await import('../src/util/rng.js');
  const { loadCompanion } = await import('../src/eval/companions.js');
  const modelPath = `${ROOT}models/fmnist-resnet8`;
  const network = extra.network ?? (await loadModel(modelPath)).network;
  return {
    network,
    rng: Rng.derive(0, 'test'),
    seed: 0,
    numClasses: network.numClasses,
    headClasses: Array.from({ length: network.numClasses }, (_, i) => i),
    dataset: 'cifar10',
    companion: async (kind, path) => (await loadCompanion(network, companionsOf ?? modelPath, kind, path)).network,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------
// Shared fixtures of the method tests: the shipped model, real Fashion-MNIST test images, and
// weight snapshots.

/** The shipped Fashion-MNIST model every method test runs on. */
export const MODEL = `${ROOT}models/fmnist-resnet8`;

type ImageDataset = import('../src/streams/datasets/types.js').ImageDataset;
type Network = import('../src/models/network.js').Network;

let fmnistTest: Promise<ImageDataset> | undefined;

/**
 * The Fashion-MNIST test split (the shipped copy; no download), loaded once per test file.
 * Call it in `beforeAll` before the synchronous fixtures below (`fmnistImages`, `mixedBatch`...).
 */
export function useFashionMnist(): Promise<ImageDataset> {
  fmnistTest ??= import('../src/streams/datasets/fashion-mnist.js').then(({ loadFashionMnist }) => loadFashionMnist('test', { allowDownload: false }));
  return fmnistTest.then((ds) => (loadedFmnist = ds));
}

let loadedFmnist: ImageDataset | undefined;

function fmnist(): ImageDataset {
  if (!loadedFmnist) throw new Error('Fashion-MNIST is not loaded: call `await useFashionMnist()` in beforeAll');
  return loadedFmnist;
}

/** `n` real Fashion-MNIST test images from index `start`, as [n, 28, 28, 1] floats in [0, 1]. */
export function fmnistImages(start: number, n: number): tf.Tensor4D {
  const ds = fmnist();
  if (start < 0 || start + n > ds.n) throw new RangeError(`fmnistImages(${start}, ${n}): the test split has ${ds.n} images`);
  return tf.tidy(() => tf.div(tf.tensor4d(ds.images.slice(start * 784, (start + n) * 784), [n, 28, 28, 1], 'int32'), 255) as tf.Tensor4D);
}

/** The labels of `fmnistImages(start, n)`, as an int32 [n] tensor. */
export function fmnistLabels(start: number, n: number): tf.Tensor1D {
  return tf.tensor1d(fmnist().labels.slice(start, start + n), 'int32');
}

/** Half real images from `start` (mostly confident), half seeded uniform noise (mostly above any entropy margin): [16, 28, 28, 1]. */
export function mixedBatch(start: number, seed: number): tf.Tensor4D {
  return tf.tidy(() => tf.concat([fmnistImages(start, 8), tf.randomUniform([8, 28, 28, 1], 0, 1, 'float32', seed)]) as tf.Tensor4D);
}

/** `n` images of seeded uniform noise, [n, 28, 28, 1]. */
export function noiseBatch(seed: number, n = 16): tf.Tensor4D {
  return tf.randomUniform([n, 28, 28, 1], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/**
 * A MethodContext's `cleanImages` that serves real Fashion-MNIST test images from index 5000
 * (away from the images the tests adapt on); `calls` records each requested count.
 */
export function fmnistCleanImages(calls: number[] = []): (count: number) => Promise<tf.Tensor4D> {
  return async (count) => {
    calls.push(count);
    return fmnistImages(5000, count);
  };
}

/** A fresh copy of the shipped model, BatchNorm on `statistics` (default: the batch's, as TENT-like methods use). */
export async function sourceNetwork(statistics: 'batch' | 'running' = 'batch'): Promise<Network> {
  const { loadModel } = await import('../src/models/checkpoint.js');
  const { network } = await loadModel(MODEL);
  network.setNormStatistics(statistics);
  return network;
}

type Weights = Network | ReadonlyMap<string, tf.Tensor>;
const namedOf = (w: Weights): ReadonlyMap<string, tf.Tensor> => ('namedWeights' in w ? (w as Network).namedWeights() : (w as ReadonlyMap<string, tf.Tensor>));

/** A copy (plain arrays, no tensors) of every weight of a network (running statistics and adapters included), or of a name -> tensor map. */
export function weightValues(weights: Weights): Map<string, Float32Array> {
  return new Map([...namedOf(weights)].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
}

/** Copies of the values of `tensors`, in order. */
export function tensorValues(tensors: readonly tf.Tensor[]): Float32Array[] {
  return tensors.map((t) => Float32Array.from(t.dataSync()));
}

/** Names of the weights whose value differs (bit for bit) from `before` (a `weightValues` copy). */
export function changedWeights(weights: Weights, before: ReadonlyMap<string, ArrayLike<number>>): string[] {
  return [...namedOf(weights)]
    .filter(([k, v]) => {
      const b = before.get(k);
      return b === undefined || v.dataSync().some((a, i) => a !== b[i]);
    })
    .map(([k]) => k);
}

/**
 * The small stream the method tests run end to end: Fashion-MNIST-C gaussian_noise then fog on
 * the shipped model, batches of 64, `ordering` (default: continual, 256 images per domain).
 */
export async function fmnistScenario(ordering: { name: string; params?: Record<string, unknown> } = { name: 'continual', params: { samplesPerDomain: 256 } }) {
  const { parseScenario } = await import('../src/streams/scenario.js');
  return parseScenario({ dataset: 'fashion-mnist', model: MODEL, corruptions: ['gaussian_noise', 'fog'], ordering, batchSize: 64 });
}

/**
 * Runs a commander command in-process (e.g. `tableCommand()`), capturing what it prints: stdout
 * (and console.log) as `out`, commander's error output as `err`.
 */
export async function runCommand(command: import('commander').Command, args: string[]): Promise<{ out: string; err: string }> {
  let out = '';
  let err = '';
  const write = process.stdout.write;
  const log = console.log;
  command.exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  console.log = (...a: unknown[]) => void (out += a.join(' ') + '\n');
  try {
    await command.parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = write;
    console.log = log;
  }
  return { out, err };
}

/** max |a - b| / max |b| of two float64 arrays; Infinity when their lengths differ. */
export function relativeError(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
