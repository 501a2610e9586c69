/**
 * Held-out evaluation for incremental scenarios: after each task, the method evaluates every
 * task's held-out set through `evaluate` (which changes no state: no adaptation, no statistics
 * folded in), giving one row of the accuracy matrix.
 */
import * as tf from '@tensorflow/tfjs';
import type { AdaptationMethod } from '../methods/types.js';
import { pixelsTensor, type Stream } from '../streams/stream.js';
import type { LabelSpace } from './label-space.js';
import { checkOutputShape, checkProbabilities } from './method-output.js';
import { predictedClass } from './metrics.js';

/** Whether the stream's tasks carry held-out sets. */
export function hasHeldOut(stream: Stream): boolean {
  return stream.ordering.tasks.some((t) => t.evalIndices && t.evalIndices.length > 0);
}

/** True when batch k is the last batch of its task. */
export function endsTask(stream: Stream, k: number): boolean {
  const next = stream.plan[k + 1];
  return next === undefined || stream.ordering.task[next[0]] !== stream.ordering.task[stream.plan[k]![0]];
}

/** Accuracy of `method` on each task's held-out set, in task order. */
export async function evaluateTasks(method: AdaptationMethod, labels: LabelSpace, stream: Stream, batchSize: number): Promise<number[]> {
  const { source, ordering } = stream;
  const [h, w, c] = [source.height, source.width, source.channels];
  const row: number[] = [];
  for (const task of ordering.tasks) {
    const indices = task.evalIndices ?? new Int32Array(0);
    const domain = ordering.domains[task.domain ?? 0]!;
    let correct = 0;
    for (let start = 0; start < indices.length; start += batchSize) {
      const idx = indices.slice(start, start + batchSize);
      const pixels = await source.read(idx, domain);
      const x = pixelsTensor(pixels, [idx.length, h, w, c]);
      const output = await method.evaluate(x);
      checkOutputShape(output, idx.length, labels.columnClasses.length, method.name, -1);
      const probsTensor = labels.toDataset(output);
      const probs = (await probsTensor.data()) as Float32Array;
      tf.dispose([x, probsTensor]);
      // Held-out predictions obey the same contract as the stream's; read once, argmax here.
      const k = labels.numClasses;
      checkProbabilities(probs, idx.length, k, method.name, -1);
      for (let i = 0; i < idx.length; i++) correct += predictedClass(probs, i, k) === source.labels[idx[i]!] ? 1 : 0;
    }
    row.push(indices.length ? correct / indices.length : 0);
  }
  return row;
}
