/**
 * A sweep worker thread: its own tfjs backend (one single-threaded wasm instance per thread is
 * how ctta uses several cores), runs the jobs the main thread sends, reports progress.
 */
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'node:worker_threads';
import { setBackend } from '../backend/index.js';
import { CttaError } from '../errors.js';
import { loadPlugin } from '../methods/index.js';
import { runScenario } from './runner.js';
import type { IdentityFields } from './run-identity.js';
import { jobScenario, type SweepJob } from './sweep.js';

const { backend, plugins, out, dataDir } = workerData as { backend: string; plugins: string[]; out: string; dataDir?: string };
const port = parentPort!;

tf.env().set('PROD', true);
try {
  await setBackend(backend);
  for (const p of plugins) await loadPlugin(p);
  port.on('message', ({ job, identity }: { job: SweepJob; identity: IdentityFields }) => {
    runScenario({
      scenario: jobScenario(job),
      method: job.method,
      label: job.label,
      methodOptions: job.methodOptions,
      seed: job.seed,
      out,
      dataDir,
      expectIdentity: identity,
      // The pool already runs a job on every core it was given: a batch thread per job would
      // only compete with the other jobs (and costs a second of start-up each).
      streamWorker: false,
      onProgress: (progress) => port.postMessage({ type: 'progress', progress }),
      onWarning: (text) => port.postMessage({ type: 'warning', text }),
      onStatus: (text) => port.postMessage({ type: 'status', text }),
    }).then(
      (r) => port.postMessage({ type: 'done', summary: r.summary, file: r.file }),
      (err: unknown) => port.postMessage({ type: 'error', error: describe(err) }),
    );
  });
  port.postMessage({ type: 'ready' });
} catch (err) {
  port.postMessage({ type: 'error', error: describe(err) });
}

/** A CttaError crosses to the main thread as its parts; anything else as its first line (exit 1). */
function describe(err: unknown): { message: string; fix?: string; exitCode?: number; stack?: string } {
  const cause = err instanceof CttaError ? err.cause : err;
  const stack = (cause as Error | undefined)?.stack;
  if (err instanceof CttaError) return { message: err.message, fix: err.fix, exitCode: err.exitCode, stack };
  return { message: String((err as Error)?.message ?? err).split('\n')[0]!, exitCode: 1, stack };
}
