/**
 * The prequential runner: for each batch, predict, score, then adapt (labels only for methods
 * that use them, and only after they predicted). Checks every prediction (method-output.ts),
 * logs every batch, writes the run's result file atomically, and checks that the run left no
 * tensor behind. Incremental scenarios score the held-out sets after each task (the accuracy
 * matrix) and, with `heldOut.every`, those of the tasks seen so far every k batches (anytime).
 * What a method throws becomes one line naming it and the batch.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import { prefetchedBatches } from '../streams/batch-worker.js';
import { batchTensor } from '../streams/stream.js';
import { yieldToEventLoop } from '../util/yield.js';
import type { BatchRecord, RunHeader, RunSummary } from './records.js';
import { checkOutputShape, checkProbabilities } from './method-output.js';
import { ResultWriter, runFile } from './result-writer.js';
import { identityDifferences, type IdentityFields } from './run-identity.js';
import { openRun, type RunSpec } from './run-setup.js';
import { Scoreboard } from './scoring.js';
import { countTasks, endsTask, hasHeldOut, isAnytimePoint, matrixRow, type TaskCount } from './task-evaluation.js';

export interface RunProgress {
  batch: number;
  batches: number;
  images: number;
  /** Online error so far, in [0, 1]. */
  error: number;
  imagesPerSecond: number;
}

export interface RunOptions extends RunSpec {
  /** Results directory; no file is written when undefined. */
  out?: string;
  /**
   * The identity the sweep planned for this run (it skipped or refused existing files by it):
   * the run stops before writing if what it actually computes differs (e.g. the scenario file
   * was edited during the sweep).
   */
  expectIdentity?: IdentityFields;
  onProgress?: (p: RunProgress) => void;
  /** Told once per warning the run records in its header (e.g. a class-subset model). */
  onWarning?: (text: string) => void;
  /**
   * Compute the stream's batches (reading, corrupting) on a worker thread, overlapping with the
   * model's work (default true); false computes them on this thread. The batches are the same.
   */
  streamWorker?: boolean;
}

export interface RunOutcome {
  header: RunHeader;
  batches: BatchRecord[];
  summary: RunSummary;
  file?: string;
  /** Predicted dataset class per stream position (for determinism checks). */
  predictions: Int32Array;
}

export async function runScenario(o: RunOptions): Promise<RunOutcome> {
  const startTensors = tf.memory().numTensors;
  const run = await openRun(o);
  const { stream, method, labels, header } = run;
  for (const w of header.warnings ?? []) o.onWarning?.(w);
  let writer: ResultWriter | undefined;
  let open = true;
  const close = () => {
    if (open) run.dispose();
    open = false;
  };
  try {
    const drift = o.expectIdentity ? identityDifferences(header, o.expectIdentity) : [];
    if (drift.length > 0) {
      throw new CttaError(`${o.scenario.name}/${run.label}/seed-${o.seed} changed since the sweep was planned: ${drift.join('; ')}`, { fix: 'do not edit scenarios or models while a sweep runs; run the command again' });
    }
    if (o.out) writer = new ResultWriter(runFile(o.out, o.scenario.name, run.label, o.seed), header);
    const score = new Scoreboard(header.domains, stream.ordering.length);
    const heldOut = hasHeldOut(stream);
    const every = heldOut ? o.scenario.heldOut?.every : undefined;
    const allTasks = stream.ordering.tasks.map((_, t) => t);
    const seenTasks = new Set<number>();
    const batches: BatchRecord[] = [];
    const streamBatches = o.streamWorker === false ? stream.batches() : prefetchedBatches(stream, 0, { dataDir: o.dataDir });
    for await (const batch of streamBatches) {
      for (const t of batch.task) seenTasks.add(t);
      if (batch.reset) await method.reset();
      const x = batchTensor(batch);
      const t0 = performance.now();
      const output = await guarded(method.name, batch.index, 'predict', () => method.predict(x));
      checkOutputShape(output, batch.y.length, labels.columnClasses.length, method.name, batch.index);
      const probsTensor = labels.toDataset(output);
      const probs = (await probsTensor.data()) as Float32Array;
      const t1 = performance.now(); // the check below is the runner's time, not the method's
      // Each column goes to one class: the mapped rows sum like the method's own.
      checkProbabilities(probs, batch.y.length, labels.numClasses, method.name, batch.index);
      score.sampleMemory();
      probsTensor.dispose();
      const perDomain = score.score(batch, probs, labels.numClasses);
      // Labels reach the method only now, after its prediction was scored.
      const t2 = performance.now();
      if (method.usesLabels) {
        const y = tf.tensor1d(batch.y, 'int32');
        await guarded(method.name, batch.index, 'adapt', () => method.adapt(x, y));
        y.dispose();
      } else {
        await guarded(method.name, batch.index, 'adapt', () => method.adapt(x));
      }
      const t3 = performance.now();
      score.sampleMemory();
      score.timed(t1 - t0 + (t3 - t2));
      x.dispose();
      // Read before any held-out evaluation, so they describe this batch's predict + adapt only.
      const diagnostics = method.diagnostics?.();
      if (method.stateParts) score.sampleStateParts(await guarded(method.name, batch.index, 'stateParts', () => method.stateParts!()), method.name, batch.index);
      // A task's end needs every task (a row of the matrix), an anytime point the tasks seen so
      // far: when a batch is both, one pass over every task serves both.
      const endOfTask = heldOut && endsTask(stream, batch.index);
      const anytimePoint = isAnytimePoint(every, batch.index);
      let counts: TaskCount[] = [];
      if (endOfTask || anytimePoint) {
        const tasks = endOfTask ? allTasks : [...seenTasks].sort((a, b) => a - b);
        counts = await guarded(method.name, batch.index, 'evaluate', () => countTasks(method, labels, stream, o.scenario.batchSize, tasks));
      }
      if (endOfTask) score.accuracyMatrix.push(matrixRow(counts));
      const anytime = anytimePoint ? score.anytime(counts.filter(([t]) => seenTasks.has(t))) : undefined;
      const record = score.record(batch, perDomain, t1 - t0, t3 - t2, diagnostics, anytime);
      batches.push(record);
      writer?.batch(record);
      o.onProgress?.({ batch: batch.index + 1, batches: stream.numBatches, ...score.progress });
      await yieldToEventLoop();
    }
    const stateBytes = method.stateBytes();
    close();
    const summary = score.summary(stateBytes, tf.memory().numTensors - startTensors);
    if (summary.leakedTensors !== 0) {
      throw new CttaError(`method "${method.name}" leaked ${summary.leakedTensors} tensors over the run`, { fix: 'wrap its tensor work in tf.tidy or dispose what it keeps', exitCode: 1 });
    }
    writer?.finish(summary);
    return { header, batches, summary, file: writer?.file, predictions: score.predictions };
  } catch (err) {
    writer?.abort();
    close();
    throw err;
  }
}

/**
 * Calls into the method; anything it throws becomes one line naming the method, the call and the
 * batch (the original error, with its stack, stays as `cause` for --verbose / CTTA_DEBUG=1).
 */
async function guarded<T>(method: string, batch: number, call: string, f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof CttaError) throw err;
    if (isOutOfMemory(err)) {
      throw new CttaError(`method "${method}" ran out of memory in ${call}() at batch ${batch}`, { fix: 'lower the scenario\'s batchSize (or the method\'s views/replay size)', exitCode: 2, cause: err });
    }
    const text = String((err as Error)?.message ?? err).split('\n')[0];
    throw new CttaError(`method "${method}" failed in ${call}() at batch ${batch}: ${text}`, { fix: 'a bug in the method; run with --verbose (or CTTA_DEBUG=1) for the stack trace', exitCode: 1, cause: err });
  }
}

/** wasm and V8 allocation failures: the heap limit, not a bug. */
export function isOutOfMemory(err: unknown): boolean {
  const text = String((err as Error)?.message ?? err);
  return /\bOOM\b/.test(text) || /out of memory|Array buffer allocation failed|Maximum memory size exceeded|Cannot enlarge memory|Invalid typed array length/i.test(text);
}
