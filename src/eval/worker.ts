/**
 * A sweep worker thread: its own tfjs backend (one single-threaded wasm instance per thread is
 * how ctta uses several cores), runs the jobs the main thread sends, reports progress.
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'node:worker_threads';
import { setBackend } from '../backend/index.js';
import { CttaError } from '../errors.js';
import { loadPlugin } from '../methods/index.js';
import { loadScenario } from '../streams/scenario.js';
import { runScenario } from './runner.js';
import type { SweepJob } from './sweep.js';

const { backend, plugins, out, dataDir } = workerData as { backend: string; plugins: string[]; out: string; dataDir?: string };
const port = parentPort!;

tf.env().set('PROD', true);
try {
  await setBackend(backend);
  for (const p of plugins) await loadPlugin(p);
  port.on('message', (job: SweepJob) => {
    runScenario({
      scenario: loadScenario(job.scenarioFile),
      method: job.method,
      label: job.label,
      methodOptions: job.methodOptions,
      seed: job.seed,
      out,
      dataDir,
      onProgress: (progress) => port.postMessage({ type: 'progress', progress }),
    }).then(
      (r) => port.postMessage({ type: 'done', summary: r.summary, file: r.file }),
      (err: unknown) => port.postMessage({ type: 'error', error: describe(err) }),
    );
  });
  port.postMessage({ type: 'ready' });
} catch (err) {
  port.postMessage({ type: 'error', error: describe(err) });
}

function describe(err: unknown): { message: string; fix?: string; exitCode?: number } {
  if (err instanceof CttaError) return { message: err.message, fix: err.fix, exitCode: err.exitCode };
  return { message: (err as Error)?.stack ?? String(err), exitCode: 1 };
}
