/**
 * The prequential runner: for each batch, predict, score, then adapt (labels only for methods
 * that use them, and only after they predicted). Logs every batch, writes the run's result
 * file atomically, and checks that the run left no tensor behind.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import { batchTensor } from '../streams/stream.js';
import { yieldToEventLoop } from '../util/yield.js';
import type { BatchRecord, RunHeader, RunSummary } from './records.js';
import { ResultWriter, runFile } from './result-writer.js';
import { openRun, type RunSpec } from './run-setup.js';
import { Scoreboard } from './scoring.js';
import { endsTask, evaluateTasks, hasHeldOut } from './task-evaluation.js';

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
  onProgress?: (p: RunProgress) => void;
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
  let writer: ResultWriter | undefined;
  let open = true;
  const close = () => {
    if (open) run.dispose();
    open = false;
  };
  try {
    if (o.out) writer = new ResultWriter(runFile(o.out, o.scenario.name, run.label, o.seed), header);
    const score = new Scoreboard(header.domains, stream.ordering.length, method.name);
    const heldOut = hasHeldOut(stream);
    const batches: BatchRecord[] = [];
    for await (const batch of stream.batches()) {
      if (batch.reset) await method.reset();
      const x = batchTensor(batch);
      const t0 = performance.now();
      const probsTensor = labels.toDataset(await method.predict(x));
      const probs = (await probsTensor.data()) as Float32Array;
      const t1 = performance.now();
      score.sampleMemory();
      probsTensor.dispose();
      const perDomain = score.score(batch, probs, labels.numClasses);
      // Labels reach the method only now, after its prediction was scored.
      const t2 = performance.now();
      if (method.usesLabels) {
        const y = tf.tensor1d(batch.y, 'int32');
        await method.adapt(x, y);
        y.dispose();
      } else {
        await method.adapt(x);
      }
      const t3 = performance.now();
      score.sampleMemory();
      score.timed(t1 - t0 + (t3 - t2));
      x.dispose();
      const record = score.record(batch, perDomain, t1 - t0, t3 - t2, method.diagnostics?.());
      batches.push(record);
      writer?.batch(record);
      if (heldOut && endsTask(stream, batch.index)) score.accuracyMatrix.push(await evaluateTasks(method, labels, stream, o.scenario.batchSize));
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
