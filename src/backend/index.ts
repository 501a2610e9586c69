/**
 * Chooses the tfjs backend once at start-up.
 *
 * `auto` tries, in order, the native TensorFlow bindings (GPU, then CPU; optional peer
 * dependencies a user installs where their install script can download libtensorflow), then the
 * WebAssembly backend (always installed, the default on machines without those bindings), then
 * the pure-JS cpu backend (correct but far too slow for convolution gradients).
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { CttaError } from '../errors.js';
import { registerWasmKernels } from './wasm-kernels.js';
import { initThreadedWasm } from './wasm-threads.js';

export const BACKEND_NAMES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendInfo {
  /** What the user asked for. */
  requested: BackendName;
  /** What runs: one of the concrete names above. */
  name: Exclude<BackendName, 'auto'>;
  /** The tfjs backend id (`tensorflow`, `wasm`, `cpu`). */
  tfBackend: string;
  /** Versions of every tfjs package in use; recorded with every result. */
  versions: Record<string, string>;
  /** wasm threads: 1 unless `--threads` started the threaded build (native backends: 1, they pick their own). */
  threads: number;
  /** Why each backend tried before the chosen one did not load (for `ctta info`). */
  skipped: { name: string; reason: string }[];
}

const require = createRequire(import.meta.url);
let current: BackendInfo | undefined;

/** Installed version of a package, or undefined when it is not installed. */
function packageVersion(pkg: string): string | undefined {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
  }
}

async function tryNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<void> {
  if (packageVersion(pkg) === undefined) {
    throw new Error(`${pkg} is not installed`);
  }
  // Importing the binding registers the `tensorflow` backend (and fails here when its native
  // library could not be downloaded at install time).
  await import(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but did not register`);
}

let wasmThreads = 1;

async function tryWasm(): Promise<void> {
  wasmThreads = await initThreadedWasm(wantedThreads);
  registerWasmKernels();
}

async function tryCpu(): Promise<void> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
}

const LOADERS: Record<Exclude<BackendName, 'auto'>, () => Promise<void>> = {
  'tensorflow-gpu': () => tryNative('@tensorflow/tfjs-node-gpu'),
  tensorflow: () => tryNative('@tensorflow/tfjs-node'),
  wasm: tryWasm,
  cpu: tryCpu,
};

const INSTALL_HINT: Record<string, string> = {
  'tensorflow-gpu':
    'install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0 --allow-scripts` (needs CUDA 11.2 + cuDNN 8.1), or use --backend wasm',
  tensorflow: 'install it with `npm install @tensorflow/tfjs-node@4.22.0 --allow-scripts`, or use --backend wasm',
  wasm: 'reinstall the project dependencies (`npm ci`)',
  cpu: 'reinstall the project dependencies (`npm ci`)',
};

/** Parses a user-supplied backend name, with an error that lists the valid ones. */
export function parseBackendName(name: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new CttaError(`unknown backend "${name}"`, { fix: `use one of: ${BACKEND_NAMES.join(', ')}` });
}

let wantedThreads = 1;

/**
 * Selects and initialises a backend. Idempotent: asking again for the backend already running
 * returns its info without re-initialising. `threads` > 1 starts wasm's threaded build
 * (wasm-threads.ts); the native backends choose their own threads and ignore it.
 */
export async function setBackend(requested: BackendName | string = 'auto', options: { threads?: number } = {}): Promise<BackendInfo> {
  const want = parseBackendName(requested);
  if (current && (want === 'auto' || want === current.name)) {
    if (options.threads !== undefined && options.threads !== current.threads && current.name === 'wasm') {
      throw new CttaError(`the wasm backend already runs with ${current.threads} thread(s); it cannot change to ${options.threads} in one process`, { fix: 'choose --threads once per process' });
    }
    return current;
  }
  wantedThreads = options.threads ?? 1;
  const order: Exclude<BackendName, 'auto'>[] =
    want === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [want];
  const skipped: { name: string; reason: string }[] = [];
  for (const name of order) {
    try {
      await LOADERS[name]();
      await tf.ready();
      current = { requested: want, name, tfBackend: tf.getBackend(), threads: name === 'wasm' ? wasmThreads : 1, versions: tfVersions(), skipped };
      return current;
    } catch (err) {
      if (err instanceof CttaError) throw err; // a usage error (--threads), not a missing backend
      skipped.push({ name, reason: firstLine(err) });
    }
  }
  const last = skipped[skipped.length - 1]!;
  throw new CttaError(`backend "${want}" could not be loaded: ${last.reason}`, {
    fix: want === 'auto' ? 'run `npm ci` to reinstall the wasm backend' : INSTALL_HINT[want],
  });
}

/** The backend chosen by the last `setBackend`, if any. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

function tfVersions(): Record<string, string> {
  const versions: Record<string, string> = { ...(tf.version as Record<string, string>) };
  for (const pkg of ['@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
    const v = packageVersion(pkg);
    if (v) versions[pkg.replace('@tensorflow/', '')] = v;
  }
  return versions;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.trim();
}
