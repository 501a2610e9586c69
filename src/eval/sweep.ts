/**
 * Sweeps: the grid scenario x method x seed, optionally a deterministic shard of it (for cluster
 * schedulers), run in this thread or in worker threads (one wasm backend each). Finished runs
 * are skipped, so an interrupted sweep resumes by running the same command again.
 */
import { Worker } from 'node:worker_threads';
import { CttaError } from '../errors.js';
import { loadScenario, type Scenario } from '../streams/scenario.js';
import type { RunSummary } from './records.js';
import { isFinished, runFile } from './result-writer.js';
import { runScenario, type RunProgress } from './runner.js';

export interface SweepJob {
  /** Scenario file, so a worker can load it again. */
  scenarioFile: string;
  scenario: string;
  method: string;
  /** The run's name in folders, tables and `--set` (a variant label, or the method's name). */
  label: string;
  methodOptions: Record<string, unknown>;
  seed: number;
}

/**
 * A methods-list entry: `tent`, or `label=method` for a named variant (`knn1=lame` with
 * `--set knn1.k=1`), so several option sets of one method get their own folders and table rows.
 */
export function parseMethodEntry(entry: string): { label: string; method: string } {
  const m = /^(?:([A-Za-z][\w-]*)=)?([^=\s]+)$/.exec(entry.trim());
  if (!m) {
    throw new CttaError(`"${entry}" is not a method name or label=method`, { fix: 'e.g. --methods source,tent,knn1=lame --set knn1.k=1' });
  }
  return { label: m[1] ?? m[2]!, method: m[2]! };
}

/** The grid in a stable order: scenarios as given, then methods, then seeds. Options are keyed by label. */
export function planSweep(scenarios: Scenario[], methods: string[] | undefined, seeds: number[] | undefined, methodOptions: Record<string, Record<string, unknown>> = {}): SweepJob[] {
  const jobs: SweepJob[] = [];
  for (const s of scenarios) {
    const entries = (methods ?? s.methods).map(parseMethodEntry);
    const labels = entries.map((e) => e.label);
    const twice = labels.find((l, i) => labels.indexOf(l) !== i);
    if (twice) throw new CttaError(`method "${twice}" is listed twice`, { fix: 'give variants of one method their own labels: --methods a=lame,b=lame' });
    for (const { label, method } of entries) {
      for (const seed of seeds ?? s.seeds) jobs.push({ scenarioFile: s.file, scenario: s.name, method, label, methodOptions: methodOptions[label] ?? {}, seed });
    }
  }
  return jobs;
}

/** "2/4" -> the 2nd of 4 slices (1-based): every 4th job starting at the 2nd. */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new CttaError(`--shard "${text}" is not i/n with 1 <= i <= n`, { fix: 'e.g. --shard 1/2 and --shard 2/2 on two machines, then ctta merge' });
  }
  return { index, count };
}

export function shardJobs(jobs: SweepJob[], shard: { index: number; count: number }): SweepJob[] {
  return jobs.filter((_, k) => k % shard.count === shard.index - 1);
}

export type SweepEvent =
  | { type: 'skip'; job: SweepJob; file: string }
  | { type: 'start'; job: SweepJob; worker: number }
  | { type: 'progress'; job: SweepJob; worker: number; progress: RunProgress }
  | { type: 'done'; job: SweepJob; worker: number; summary: RunSummary; file: string };

export interface SweepOptions {
  out: string;
  workers: number;
  dataDir?: string;
  backend: string;
  plugins: string[];
  onEvent?: (e: SweepEvent) => void;
}

/** Runs the jobs that are not finished yet; returns how many ran. */
export async function runSweep(jobs: SweepJob[], o: SweepOptions): Promise<number> {
  const todo: SweepJob[] = [];
  for (const job of jobs) {
    const file = runFile(o.out, job.scenario, job.label, job.seed);
    if (isFinished(file)) o.onEvent?.({ type: 'skip', job, file });
    else todo.push(job);
  }
  if (o.workers <= 1 || todo.length <= 1) {
    for (const job of todo) {
      o.onEvent?.({ type: 'start', job, worker: 0 });
      const r = await runScenario({
        scenario: loadScenario(job.scenarioFile),
        method: job.method,
        label: job.label,
        methodOptions: job.methodOptions,
        seed: job.seed,
        out: o.out,
        dataDir: o.dataDir,
        onProgress: (progress) => o.onEvent?.({ type: 'progress', job, worker: 0, progress }),
      });
      o.onEvent?.({ type: 'done', job, worker: 0, summary: r.summary, file: r.file! });
    }
    return todo.length;
  }
  await runInWorkers(todo, o);
  return todo.length;
}

/** A pool of worker threads, each taking the next job when it finishes one. */
async function runInWorkers(jobs: SweepJob[], o: SweepOptions): Promise<void> {
  const queue = [...jobs];
  const workerCount = Math.min(o.workers, jobs.length);
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
  // Run from TypeScript sources (tests, development), the worker registers tsx's loader itself:
  // loader flags given to the main thread do not reach worker threads on Node 20.
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  const runOne = (id: number): Promise<void> =>
    new Promise((resolveAll, rejectAll) => {
      const workerData = { backend: o.backend, plugins: o.plugins, out: o.out, dataDir: o.dataDir };
      const worker = fromSource ? new Worker(bootstrap, { eval: true, workerData }) : new Worker(url, { workerData });
      let current: SweepJob | undefined;
      const next = () => {
        current = queue.shift();
        if (!current) {
          void worker.terminate();
          resolveAll();
          return;
        }
        o.onEvent?.({ type: 'start', job: current, worker: id });
        worker.postMessage(current);
      };
      worker.on('message', (m: { type: string; progress?: RunProgress; summary?: RunSummary; file?: string; error?: { message: string; fix?: string; exitCode?: number } }) => {
        if (m.type === 'ready') next();
        else if (m.type === 'progress') o.onEvent?.({ type: 'progress', job: current!, worker: id, progress: m.progress! });
        else if (m.type === 'done') {
          o.onEvent?.({ type: 'done', job: current!, worker: id, summary: m.summary!, file: m.file! });
          next();
        } else if (m.type === 'error') {
          void worker.terminate();
          const e = m.error!;
          rejectAll(new CttaError(`${current?.scenario}/${current?.label}/seed-${current?.seed}: ${e.message}`, { fix: e.fix, exitCode: e.exitCode ?? 1 }));
        }
      });
      worker.on('error', (err) => rejectAll(err));
    });
  await Promise.all(Array.from({ length: workerCount }, (_, i) => runOne(i + 1)));
}
