/**
 * The prequential runner: for each batch, predict, score, then adapt (labels only for methods
 * that use them, and only after they predicted). Logs every batch, writes the run's result
 * file atomically, and checks that the run left no tensor behind.
 */
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../backend/index.js';
import { CttaError } from '../errors.js';
import { loadModel } from '../models/checkpoint.js';
import { createMethod } from '../methods/index.js';
import { resolveModelPath, type Scenario } from '../streams/scenario.js';
import { CLEAN_CORRUPTION } from '../streams/orderings/index.js';
import { batchTensor, openStream, pixelsTensor } from '../streams/stream.js';
import { packageVersion } from '../util/version.js';
import { Rng } from '../util/rng.js';
import { yieldToEventLoop } from '../util/yield.js';
import { CalibrationBins, matrixMetrics, mean } from './metrics.js';
import { endsTask, evaluateTasks, hasHeldOut } from './task-evaluation.js';
import type { BatchRecord, RunHeader, RunSummary } from './records.js';
import { ResultWriter, runFile } from './result-writer.js';

export interface RunProgress {
  batch: number;
  batches: number;
  images: number;
  /** Online error so far, in [0, 1]. */
  error: number;
  imagesPerSecond: number;
}

export interface RunOptions {
  scenario: Scenario;
  method: string;
  methodOptions?: Record<string, unknown>;
  /** Name of this variant in folders and tables (default: the method's name). */
  label?: string;
  seed: number;
  /** Results directory; no file is written when undefined. */
  out?: string;
  dataDir?: string;
  onProgress?: (p: RunProgress) => void;
}

export interface RunResult {
  header: RunHeader;
  batches: BatchRecord[];
  summary: RunSummary;
  file?: string;
  /** Predicted dataset class per stream position (for determinism checks). */
  predictions: Int32Array;
}

export async function runScenario(o: RunOptions): Promise<RunResult> {
  const startTensors = tf.memory().numTensors;
  const { scenario, seed } = o;
  const stream = await openStream(scenario, seed, { dataDir: o.dataDir });
  const modelPath = resolveModelPath(scenario.model);
  const { network, manifest } = await loadModel(modelPath);
  const method = createMethod(o.method, o.methodOptions ?? {});
  let writer: ResultWriter | undefined;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    method.dispose();
    network.dispose();
  };
  try {
    const [h, w, c] = network.inputShape;
    const { height, width, channels } = stream.source;
    if (h !== height || w !== width || c !== channels) {
      throw new CttaError(`${scenario.file}: model ${scenario.model} takes ${h}x${w}x${c} images but the stream gives ${height}x${width}x${channels}`, { fix: 'use a model trained on this dataset' });
    }
    // Head index -> dataset class (a model trained on a class subset predicts only those).
    const headClasses = manifest?.classes ?? Array.from({ length: network.numClasses }, (_, i) => i);
    const ordering = stream.ordering;
    const header: RunHeader = {
      type: 'header',
      format: 'ctta-results/1',
      scenario: scenario.name,
      scenarioHash: scenario.hash,
      method: method.name,
      methodOptions: method.options,
      seed,
      domains: ordering.domains.map((d) => d.name),
      tasks: ordering.tasks.map((t) => t.name),
      backend: backendInfo()?.name ?? tf.getBackend(),
      versions: backendInfo()?.versions ?? {},
      ctta: packageVersion(),
      node: process.version,
      startedAt: new Date().toISOString(),
    };
    const label = o.label ?? method.name;
    if (label !== method.name) header.label = label;
    if (o.out) writer = new ResultWriter(runFile(o.out, scenario.name, label, seed), header);
    await method.init({
      network,
      rng: Rng.derive(seed, 'method', method.name),
      seed,
      numClasses: network.numClasses,
      family: scenario.dataset === 'imagenet-c' ? 'imagenet' : 'small',
      modelPath,
      cleanImages: async (count) => {
        // Seeded draw without replacement from the whole dataset, read uncorrupted.
        const all = Rng.derive(seed, 'clean-images').permutation(stream.source.labels.length);
        const indices = all.subarray(0, Math.min(count, all.length));
        const pixels = await stream.source.read(indices, { name: 'clean', corruption: CLEAN_CORRUPTION, severity: 0 });
        return pixelsTensor(pixels, [indices.length, height, width, channels]);
      },
    });

    const domainSeen = new Float64Array(ordering.domains.length);
    const domainCorrect = new Float64Array(ordering.domains.length);
    const calibration = new CalibrationBins(15);
    const predictions = new Int32Array(ordering.length);
    const batches: BatchRecord[] = [];
    // Incremental scenarios with held-out sets: row i = accuracy on every task after task i.
    const evaluate = hasHeldOut(stream);
    const accuracyMatrix: number[][] = [];
    let images = 0;
    let correctTotal = 0;
    let methodMs = 0;
    let peakBytes = tf.memory().numBytes;
    for await (const batch of stream.batches()) {
      if (batch.reset) await method.reset();
      const x = batchTensor(batch);
      const t0 = performance.now();
      const probsTensor = await method.predict(x);
      const probs = (await probsTensor.data()) as Float32Array;
      const t1 = performance.now();
      peakBytes = Math.max(peakBytes, tf.memory().numBytes);
      probsTensor.dispose();
      const n = batch.y.length;
      const k = network.numClasses;
      const perDomain = new Map<number, [number, number]>();
      for (let i = 0; i < n; i++) {
        let best = 0;
        for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
        const confidence = probs[i * k + best]!;
        if (!Number.isFinite(confidence)) {
          throw new CttaError(`method "${method.name}" returned non-finite probabilities at batch ${batch.index} (positions ${batch.start}-${batch.end})`, {
            fix: 'the method diverged: lower its learning rate; the unfinished result file was removed',
            exitCode: 1,
          });
        }
        const predicted = headClasses[best]!;
        const ok = predicted === batch.y[i];
        predictions[batch.start + i] = predicted;
        calibration.add(confidence, ok);
        const d = batch.domain[i]!;
        const cell = perDomain.get(d) ?? [0, 0];
        cell[0] += 1;
        cell[1] += ok ? 1 : 0;
        perDomain.set(d, cell);
      }
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
      peakBytes = Math.max(peakBytes, tf.memory().numBytes);
      x.dispose();
      const record: BatchRecord = {
        type: 'batch',
        i: batch.index,
        start: batch.start,
        end: batch.end,
        task: batch.task[0]!,
        perDomain: [...perDomain].map(([d, [seen, correct]]) => [d, seen, correct]),
        predictMs: round(t1 - t0),
        adaptMs: round(t3 - t2),
        tensorBytes: tf.memory().numBytes,
        rss: process.memoryUsage.rss(),
      };
      for (const [d, seen, correct] of record.perDomain) {
        domainSeen[d]! += seen;
        domainCorrect[d]! += correct;
        images += seen;
        correctTotal += correct;
      }
      methodMs += t1 - t0 + (t3 - t2);
      batches.push(record);
      writer?.batch(record);
      if (evaluate && endsTask(stream, batch.index)) accuracyMatrix.push(await evaluateTasks(method, stream, headClasses, scenario.batchSize));
      o.onProgress?.({ batch: batch.index + 1, batches: stream.numBatches, images, error: 1 - correctTotal / images, imagesPerSecond: (images * 1000) / methodMs });
      await yieldToEventLoop();
    }

    const errorPerDomain: Record<string, number> = {};
    ordering.domains.forEach((d, i) => {
      if (domainSeen[i]! > 0) errorPerDomain[d.name] = 1 - domainCorrect[i]! / domainSeen[i]!;
    });
    const stateBytes = method.stateBytes();
    release();
    const summary: RunSummary = {
      type: 'summary',
      n: images,
      errorPerDomain,
      meanError: mean(Object.values(errorPerDomain)),
      onlineError: images ? 1 - correctTotal / images : 0,
      ece: calibration.ece(),
      peakTensorBytes: peakBytes,
      methodStateBytes: stateBytes,
      imagesPerSecond: methodMs > 0 ? (images * 1000) / methodMs : 0,
      seconds: round(methodMs / 1000),
      leakedTensors: tf.memory().numTensors - startTensors,
      ...(evaluate ? { accuracyMatrix, ...matrixMetrics(accuracyMatrix) } : {}),
    };
    if (summary.leakedTensors !== 0) {
      throw new CttaError(`method "${method.name}" leaked ${summary.leakedTensors} tensors over the run`, { fix: 'wrap its tensor work in tf.tidy or dispose what it keeps', exitCode: 1 });
    }
    writer?.finish(summary);
    return { header, batches, summary, file: writer?.file, predictions };
  } catch (err) {
    writer?.abort();
    release();
    throw err;
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

