/**
 * Held-out evaluation for incremental scenarios: after each task, the method evaluates every
 * task's held-out set through `evaluate` (which changes no state: no adaptation, no statistics
 * folded in), giving one row of the accuracy matrix. With the scenario's `heldOut.every`, it also
 * evaluates the held-out sets of the tasks seen so far every `every` batches (anytime accuracy).
 */
import * as tf from '@tensorflow/tfjs';
import type { AdaptationMethod } from '../methods/types.js';
import { pixelsTensor, type Stream } from '../streams/stream.js';
import type { LabelSpace } from './label-space.js';
import { checkOutputShape, checkProbabilities } from './method-output.js';
import { predictedClass } from './metrics.js';

/** One task's held-out score: [task index, images, correct]. */
export type TaskCount = [number, number, number];

/** Whether the stream's tasks carry held-out sets. */
export function hasHeldOut(stream: Stream): boolean {
  return stream.ordering.tasks.some((t) => t.evalIndices && t.evalIndices.length > 0);
}

/** True when batch k is the last batch of its task. */
export function endsTask(stream: Stream, k: number): boolean {
  const next = stream.plan[k + 1];
  return next === undefined || stream.ordering.task[next[0]] !== stream.ordering.task[stream.plan[k]![0]];
}

/** True when the scenario asks for an anytime evaluation after batch k (every `every` batches). */
export function isAnytimePoint(every: number | undefined, k: number): boolean {
  return every !== undefined && (k + 1) % every === 0;
}

/** A row of the accuracy matrix from every task's counts (0 for a task without held-out images). */
export function matrixRow(counts: readonly TaskCount[]): number[] {
  return counts.map(([, images, correct]) => (images ? correct / images : 0));
}

/** [task, images, correct] of `method` on the held-out sets of `tasks`, in the order given. */
export async function countTasks(method: AdaptationMethod, labels: LabelSpace, stream: Stream, batchSize: number, tasks: readonly number[]): Promise<TaskCount[]> {
  const { source, ordering } = stream;
  const [h, w, c] = [source.height, source.width, source.channels];
  const out: TaskCount[] = [];
  for (const t of tasks) {
    const task = ordering.tasks[t]!;
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
    out.push([t, indices.length, correct]);
  }
  return out;
}
