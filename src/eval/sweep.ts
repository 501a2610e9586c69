/**
 * Sweeps: the grid scenario x method x seed, optionally a deterministic shard of it (for cluster
 * schedulers), run in this thread or in worker threads (one wasm backend each). A run whose file
 * is finished with the same identity (run-identity.ts) is skipped, so an interrupted sweep
 * resumes by running the same command again; one with another identity is refused, never reused.
 * Runs are locked while they run (run-lock.ts), so two sweeps on one folder share the work
 * instead of writing the same file. A run that fails is reported and the sweep goes on.
 */
import { CttaError } from '../errors.js';
import { createMethod } from '../methods/index.js';
import { loadModel } from '../models/checkpoint.js';
import { datasetDefaultsKey } from '../streams/datasets/index.js';
import { loadScenario, resolveModelPath, type Scenario } from '../streams/scenario.js';
import { canonicalJson } from '../util/json-file.js';
import { isScratch, scratchModelHash, type ScratchModel } from '../models/scenario-model.js';
import { currentCompanionHash } from './companions.js';
import { RESULTS_FORMAT, type RunHeader, type RunSummary } from './records.js';
import { finishedRun, runFile } from './result-writer.js';
import { identityDifferences, type IdentityFields } from './run-identity.js';
import { liveLock, tryLock, type LockInfo } from './run-lock.js';
import { runScenario, type RunProgress } from './runner.js';
import { runInWorkers } from './worker-pool.js';

export interface SweepJob {
  /** Scenario file and the `--scenario-set` overrides applied to it, so a worker can load it again. */
  scenarioFile: string;
  scenarioOverrides?: string[];
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
  const m = /^(?:([A-Za-z][\w-]*)=)?([A-Za-z][\w-]*)$/.exec(entry.trim());
  if (!m) {
    throw new CttaError(`"${entry}" is not a method name or label=method`, { fix: 'e.g. --methods source,tent,knn1=lame --set knn1.k=1' });
  }
  return { label: m[1] ?? m[2]!, method: m[2]! };
}

/**
 * The grid in a stable order: scenarios as given, then methods, then seeds. Options are keyed by
 * label. A scenario or seed given twice is run once (`--seeds 0,0`).
 */
export function planSweep(scenarios: Scenario[], methods: string[] | undefined, seeds: number[] | undefined, methodOptions: Record<string, Record<string, unknown>> = {}, scenarioOverrides: string[] = []): SweepJob[] {
  const jobs: SweepJob[] = [];
  const names = new Map<string, string>();
  for (const s of scenarios) {
    const other = names.get(s.name);
    if (other === s.file) continue;
    if (other !== undefined) {
      throw new CttaError(`scenarios ${other} and ${s.file} are both named "${s.name}": their results would share one folder`, { fix: 'give one of them another "name"' });
    }
    names.set(s.name, s.file);
    const entries = (methods ?? s.methods).map(parseMethodEntry);
    const labels = entries.map((e) => e.label);
    const twice = labels.find((l, i) => labels.indexOf(l) !== i);
    if (twice) throw new CttaError(`method "${twice}" is listed twice`, { fix: 'give variants of one method their own labels: --methods a=lame,b=lame' });
    for (const { label, method } of entries) {
      for (const seed of new Set(seeds ?? s.seeds)) jobs.push({ scenarioFile: s.file, ...(scenarioOverrides.length > 0 ? { scenarioOverrides } : {}), scenario: s.name, method, label, methodOptions: methodOptions[label] ?? {}, seed });
    }
  }
  return jobs;
}

/** The scenario a job runs: its file with the sweep's `--scenario-set` overrides. */
export function jobScenario(job: SweepJob): Scenario {
  return loadScenario(job.scenarioFile, job.scenarioOverrides);
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
  | { type: 'busy'; job: SweepJob; file: string; holder: string }
  | { type: 'start'; job: SweepJob; worker: number }
  | { type: 'warning'; job: SweepJob; worker: number; text: string }
  | { type: 'status'; job: SweepJob; worker: number; text: string }
  | { type: 'progress'; job: SweepJob; worker: number; progress: RunProgress }
  | { type: 'done'; job: SweepJob; worker: number; summary: RunSummary; file: string }
  | { type: 'failed'; job: SweepJob; worker: number; error: CttaError };

export interface SweepOptions {
  out: string;
  workers: number;
  dataDir?: string;
  backend: string;
  plugins: string[];
  onEvent?: (e: SweepEvent) => void;
}

export interface SweepReport {
  /** Runs computed now. */
  ran: number;
  /** Runs already finished with the same identity. */
  skipped: number;
  /** Runs another process holds (same identity): left to it. */
  busy: number;
  /** Runs that failed (a method threw or returned bad output); the others went on. */
  failed: { job: SweepJob; error: CttaError }[];
}

/** A job with the identity its result file must have (see run-identity.ts). */
export interface PlannedJob {
  job: SweepJob;
  file: string;
  identity: IdentityFields;
  /** The scenario's checkpoint, resolved (companions are found beside it); undefined for a scratch model. */
  modelPath?: string;
}

/**
 * Runs the jobs that are not finished yet. Before anything runs, every finished (or running) run
 * in `out` is compared with what this sweep would compute: a different identity (options,
 * scenario, model) is refused with exit 2 and the difference, never reused or overwritten.
 */
export async function runSweep(jobs: SweepJob[], o: SweepOptions): Promise<SweepReport> {
  const planned = await expectedIdentities(jobs, o.out);
  const report: SweepReport = { ran: 0, skipped: 0, busy: 0, failed: [] };
  const todo: PlannedJob[] = [];
  const conflicts: string[] = [];
  for (const p of planned) {
    const state = existingRun(p);
    if (state.kind === 'conflict') conflicts.push(state.message);
    else if (state.kind === 'finished') {
      report.skipped++;
      o.onEvent?.({ type: 'skip', job: p.job, file: p.file });
    } else todo.push(p);
  }
  if (conflicts.length > 0) throw conflict(`${conflicts[0]}${conflicts.length > 1 ? ` (and ${conflicts.length - 1} more run(s))` : ''}`);
  /**
   * Locks a job for as long as it runs (in this thread or a worker); undefined when another
   * process holds it or finished it meanwhile. Another process computing the same run with other
   * settings is an input error (thrown): going on would fill the row with a mix of both.
   */
  const claim = (p: PlannedJob): (() => void) | undefined => {
    const lock = tryLock(p.file, canonicalJson(p.identity));
    if (!lock.acquired) {
      if (lock.holder && lock.holder.identity !== canonicalJson(p.identity)) throw conflict(busyMessage(p.file, lock.holder));
      report.busy++;
      o.onEvent?.({ type: 'busy', job: p.job, file: p.file, holder: lock.holder ? `process ${lock.holder.pid} on ${lock.holder.host}` : `the lock ${lock.file}` });
      return undefined;
    }
    // Finished by another process between our first look and the lock.
    const state = existingRun(p);
    if (state.kind !== 'todo') {
      lock.release();
      if (state.kind === 'conflict') throw conflict(state.message);
      report.skipped++;
      o.onEvent?.({ type: 'skip', job: p.job, file: p.file });
      return undefined;
    }
    return lock.release;
  };
  const fail = (p: PlannedJob, error: CttaError, worker: number) => {
    report.failed.push({ job: p.job, error });
    o.onEvent?.({ type: 'failed', job: p.job, worker, error });
  };
  if (o.workers <= 1 || todo.length <= 1) {
    for (const p of todo) {
      const release = claim(p);
      if (!release) continue;
      try {
        o.onEvent?.({ type: 'start', job: p.job, worker: 0 });
        const r = await runScenario({
          scenario: jobScenario(p.job),
          method: p.job.method,
          label: p.job.label,
          methodOptions: p.job.methodOptions,
          seed: p.job.seed,
          out: o.out,
          dataDir: o.dataDir,
          expectIdentity: p.identity,
          onProgress: (progress) => o.onEvent?.({ type: 'progress', job: p.job, worker: 0, progress }),
          onWarning: (text) => o.onEvent?.({ type: 'warning', job: p.job, worker: 0, text }),
          onStatus: (text) => o.onEvent?.({ type: 'status', job: p.job, worker: 0, text }),
        });
        report.ran++;
        o.onEvent?.({ type: 'done', job: p.job, worker: 0, summary: r.summary, file: r.file! });
      } catch (err) {
        const error = asRunError(err, p.job);
        if (error.exitCode === 2) throw error; // bad input: every other run would meet it too
        fail(p, error, 0);
      } finally {
        release();
      }
    }
    return report;
  }
  await runInWorkers(todo, o, {
    claim,
    done: () => report.ran++,
    fail: (p, err, worker) => {
      const error = asRunError(err, p.job);
      if (error.exitCode === 2) return error; // bad input: stop handing out jobs
      fail(p, error, worker);
      return undefined;
    },
  });
  return report;
}

/** Identities of the jobs: scenario hash, effective options for the scenario's dataset, model hash. */
async function expectedIdentities(jobs: SweepJob[], out: string): Promise<PlannedJob[]> {
  const scenarios = new Map<string, Scenario>();
  const options = new Map<string, Record<string, unknown>>();
  const models = new Map<string, string>();
  const planned: PlannedJob[] = [];
  for (const job of jobs) {
    let scenario = scenarios.get(job.scenarioFile);
    if (!scenario) scenarios.set(job.scenarioFile, (scenario = jobScenario(job)));
    const optionsKey = `${job.scenarioFile}\0${job.label}`;
    let effective = options.get(optionsKey);
    if (!effective) {
      const method = createMethod(job.method, job.methodOptions, datasetDefaultsKey(scenario.dataset));
      effective = method.options as Record<string, unknown>;
      method.dispose();
      options.set(optionsKey, effective);
    }
    // A scratch model is identified by its architecture and options (the seed is the run's).
    const modelPath = isScratch(scenario.model) ? undefined : resolveModelPath(scenario.model, scenario.file);
    const modelKey = modelPath ?? canonicalJson(scenario.model);
    let modelHash = models.get(modelKey);
    if (!modelHash) {
      if (modelPath === undefined) modelHash = scratchModelHash(scenario.model as ScratchModel);
      else {
        const loaded = await loadModel(modelPath);
        loaded.network.dispose();
        modelHash = loaded.hash;
      }
      models.set(modelKey, modelHash);
    }
    planned.push({
      job,
      modelPath,
      file: runFile(out, job.scenario, job.label, job.seed),
      identity: { format: RESULTS_FORMAT, scenario: scenario.name, scenarioHash: scenario.hash, method: job.method, methodOptions: effective, seed: job.seed, modelHash },
    });
  }
  return planned;
}

type RunState = { kind: 'todo' } | { kind: 'finished' } | { kind: 'conflict'; message: string };

/**
 * Whether the job's file is finished with the same identity, finished or being computed with
 * another one (a conflict), or still to do (possibly by another process with the same identity).
 */
function existingRun(p: PlannedJob): RunState {
  const finished = finishedRun(p.file);
  if (finished) {
    const { header } = finished;
    const diff = header ? [...identityDifferences(header, p.identity), ...companionChanges(header, p.modelPath)] : ['its header cannot be read'];
    return diff.length === 0 ? { kind: 'finished' } : { kind: 'conflict', message: `${p.file} is a finished run with other settings: ${diff.join('; ')}` };
  }
  const holder = liveLock(p.file);
  if (holder && holder.identity !== canonicalJson(p.identity)) return { kind: 'conflict', message: busyMessage(p.file, holder) };
  return { kind: 'todo' };
}

/** The companions a finished run loaded that are not the same files any more (re-warmed, removed). */
function companionChanges(header: RunHeader, modelPath: string | undefined): string[] {
  if (modelPath === undefined) return [];
  return Object.entries(header.companions ?? {}).flatMap(([kind, c]) => {
    const now = currentCompanionHash(modelPath, kind, c.path);
    return now === c.hash ? [] : [`its ${kind} companion checkpoint has changed (hash ${c.hash.slice(0, 12)} vs ${now ? now.slice(0, 12) : 'missing'})`];
  });
}

function busyMessage(file: string, holder: LockInfo): string {
  return `${file} is being computed by process ${holder.pid} on ${holder.host} with other settings`;
}

function conflict(message: string): CttaError {
  return new CttaError(message, {
    fix: 'write to another --out, give the variant its own label (--methods half=bn --set half.alpha=0.5), or delete the old file(s) to redo them',
  });
}

/** A failure of one run as a one-line error naming the run (exit 1 unless it is about input). */
function asRunError(err: unknown, job: SweepJob): CttaError {
  const where = `${job.scenario}/${job.label}/seed-${job.seed}`;
  if (err instanceof CttaError) {
    // The cause kept is the original failure (its stack is what --verbose shows).
    return new CttaError(err.message.startsWith(where) ? err.message : `${where}: ${err.message}`, { fix: err.fix, exitCode: err.exitCode, cause: err.cause ?? err });
  }
  return new CttaError(`${where}: ${firstLine(err)}`, { exitCode: 1, cause: err });
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}
