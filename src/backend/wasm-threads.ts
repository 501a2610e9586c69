/**
 * The threaded build of tfjs's wasm backend in Node (`--threads N`): XNNPACK's convolutions and
 * matmuls split over N cores, so one run uses more than one core. Opt-in, and only for single runs:
 * a sweep's `--workers` scales better (one job per core, nothing shared).
 *
 * Why shims are needed (tfjs-backend-wasm 4.22): tfjs forces `WASM_HAS_MULTITHREAD_SUPPORT` off in
 * Node because its emscripten pthread workers are handed over as Blob URLs, which Node's `Worker`
 * refuses (ERR_WORKER_PATH). And its C++ caps the thread pool at logical cores / 2, computed when
 * the module starts, assuming two hyper-threads per core; on a 2-vCPU machine that is 1 thread.
 * While the backend initialises (and only then) this module:
 *   1. writes the worker script and the module's code to a private temporary folder and hands the
 *      worker their paths instead of Blob URLs (emscripten's Node path then loads them with fs);
 *   2. reports 2N logical cores to the module, so its cap (cores / 2) allows the N threads asked for;
 * and restores the globals afterwards. The worker pool is created during initialisation, so
 * nothing needs the shims later. The temporary folder is removed when the process exits.
 *
 * Results are identical to one thread: XNNPACK gives each output tile to one thread and keeps the
 * order of every sum; tests/wasm-threads.test.ts compares predictions of whole runs.
 * Measured on the shipped ResNet-8 and ResNet-20 (README, Benchmarks): 1.15-1.7x per pass on 2 cores.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { CttaError } from '../errors.js';

/** The prefix of the Blob tfjs builds from its own factory function (the pthread's main script). */
const MAIN_SCRIPT_PREFIX = 'var WasmBackendModuleThreadedSimd';
/** The worker's branch for a script URL; the other branch (a Blob) cannot run in Node. */
const WORKER_LOAD = 'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}';
/**
 * Bundler names the factory function refers to: defined at the top of tfjs's Node bundle, absent
 * in the worker that evaluates the function's text alone.
 */
const BUNDLE_PRELUDE =
  "var commonjsGlobal=globalThis,require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks'),require$$4=require('os');";

/** XNNPACK's limit in tfjs (8 pre-created workers). */
export const MAX_WASM_THREADS = 8;

/**
 * Initialises the wasm backend with `threads` threads. Must run before the wasm backend is first
 * initialised (the thread count is fixed then). Throws a CttaError if the shims no longer match
 * the installed tfjs (another version), rather than silently running on one thread.
 */
export async function initThreadedWasm(threads: number): Promise<number> {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new CttaError(`--threads ${threads} is not a whole number from 1 to ${MAX_WASM_THREADS}`, { fix: `e.g. --threads ${Math.min(os.cpus().length, MAX_WASM_THREADS)} (the cores of this machine)` });
  }
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (threads === 1) {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
    return 1;
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'ctta-wasm-threads-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const mainScript = join(dir, 'main.js');
  const workerScript = join(dir, 'worker.js');
  const seen = { main: false, worker: false };

  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const originalCpus = os.cpus;
  class TextBlob extends OriginalBlob {
    readonly text_: string;
    constructor(parts: unknown[], options?: { type?: string }) {
      super(parts as ConstructorParameters<typeof Blob>[0], options);
      this.text_ = parts.every((p) => typeof p === 'string') ? parts.join('') : '';
      if (this.text_.startsWith(MAIN_SCRIPT_PREFIX)) {
        writeFileSync(mainScript, BUNDLE_PRELUDE + this.text_);
        seen.main = true;
      }
    }
  }
  globalThis.Blob = TextBlob as typeof Blob;
  URL.createObjectURL = (obj: Blob) => {
    const text = obj instanceof TextBlob ? obj.text_ : '';
    if (!text.includes(WORKER_LOAD)) return originalCreateObjectURL(obj);
    writeFileSync(workerScript, text.replace(WORKER_LOAD, `if(true){importScripts(${JSON.stringify(mainScript)})}`));
    seen.worker = true;
    return workerScript;
  };
  const cpu = originalCpus()[0]!;
  os.cpus = () => Array.from({ length: 2 * threads }, () => cpu);
  try {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(threads);
    if (!(await tf.setBackend('wasm'))) throw new Error('the threaded wasm backend failed to initialise');
  } finally {
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    os.cpus = originalCpus;
  }
  const running = wasm.getThreadsCount();
  if (!seen.main || !seen.worker || running !== threads) {
    throw new CttaError(`the threaded wasm build did not start ${threads} threads (running ${running}; tfjs-backend-wasm ${wasm.version_wasm} is not the version these shims were written for)`, { fix: 'run without --threads (one thread), or use --workers N to spread a sweep over the cores' });
  }
  return running;
}
