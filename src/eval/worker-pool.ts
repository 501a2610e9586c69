/**
 * The main thread's side of `ctta run --workers N`: a pool of worker threads (worker.ts), one
 * tfjs backend each, fed one job at a time. Jobs are claimed (locked) here, in the main thread,
 * so every lock belongs to this process and is removed when it exits.
 */
import { Worker } from 'node:worker_threads';
import { CttaError } from '../errors.js';
import type { RunSummary } from './records.js';
import type { RunProgress } from './runner.js';
import type { PlannedJob, SweepOptions } from './sweep.js';

export interface PoolHooks {
  /** Locks a job before it is handed out; undefined: skip it; throws: stop handing out jobs. */
  claim(p: PlannedJob): (() => void) | undefined;
  done(p: PlannedJob): void;
  /** A job failed; returns an error to stop the sweep with (bad input), or undefined to go on. */
  fail(p: PlannedJob, error: CttaError, worker: number): CttaError | undefined;
}

/**
 * A pool of worker threads, each taking the next job when it finishes one. A job that fails is
 * reported and the worker goes on with the next one; a worker that cannot start stops the sweep.
 */
export async function runInWorkers(jobs: PlannedJob[], o: SweepOptions, hooks: PoolHooks): Promise<void> {
  const queue = [...jobs];
  const workerCount = Math.min(o.workers, jobs.length);
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
  // Run from TypeScript sources (tests, development), the worker registers tsx's loader itself:
  // loader flags given to the main thread do not reach worker threads on Node 20.
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  let inputError: CttaError | undefined;
  const runOne = (id: number): Promise<void> =>
    new Promise((resolveAll, rejectAll) => {
      const workerData = { backend: o.backend, plugins: o.plugins, out: o.out, dataDir: o.dataDir };
      const worker = fromSource ? new Worker(bootstrap, { eval: true, workerData }) : new Worker(url, { workerData });
      let current: PlannedJob | undefined;
      let release: (() => void) | undefined;
      const finish = () => {
        release?.();
        release = undefined;
      };
      const next = () => {
        finish();
        current = undefined;
        while (!inputError && queue.length > 0 && !current) {
          const p = queue.shift()!;
          try {
            release = hooks.claim(p);
          } catch (err) {
            inputError ??= err as CttaError; // a conflict: stop handing out jobs
          }
          if (release) current = p;
        }
        if (!current) {
          void worker.terminate();
          resolveAll();
          return;
        }
        o.onEvent?.({ type: 'start', job: current.job, worker: id });
        worker.postMessage({ job: current.job, identity: current.identity });
      };
      worker.on('message', (m: { type: string; progress?: RunProgress; summary?: RunSummary; file?: string; text?: string; error?: WorkerError }) => {
        if (m.type === 'ready') next();
        else if (m.type === 'warning') o.onEvent?.({ type: 'warning', job: current!.job, worker: id, text: m.text! });
        else if (m.type === 'status') o.onEvent?.({ type: 'status', job: current!.job, worker: id, text: m.text! });
        else if (m.type === 'progress') o.onEvent?.({ type: 'progress', job: current!.job, worker: id, progress: m.progress! });
        else if (m.type === 'done') {
          hooks.done(current!);
          o.onEvent?.({ type: 'done', job: current!.job, worker: id, summary: m.summary!, file: m.file! });
          next();
        } else if (m.type === 'error') {
          const e = m.error!;
          // The worker's stack travels as the cause, for --verbose.
          const cause = e.stack ? Object.assign(new Error(e.message), { stack: e.stack }) : undefined;
          const error = new CttaError(e.message, { fix: e.fix, exitCode: e.exitCode ?? 1, cause });
          if (!current) {
            // The worker could not start (backend, plug-in): nothing can run in it.
            finish();
            void worker.terminate();
            rejectAll(error);
            return;
          }
          const stop = hooks.fail(current, error, id);
          if (stop) inputError ??= stop;
          next();
        }
      });
      worker.on('error', (err) => {
        finish();
        rejectAll(err);
      });
    });
  await Promise.all(Array.from({ length: workerCount }, (_, i) => runOne(i + 1)));
  if (inputError) throw inputError;
}

interface WorkerError {
  message: string;
  fix?: string;
  exitCode?: number;
  stack?: string;
}
