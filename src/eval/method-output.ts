/**
 * The contract of `predict`, checked on every batch of every run: a [N, columns] tensor of finite
 * probabilities (non-negative, each row summing to 1). A method (built-in or plug-in) that
 * returns logits, a wrong shape or NaN stops its run with a message saying which method, which
 * batch and what was found, instead of scoring numbers that mean nothing (an argmax over logits
 * still gives an error rate, and an ECE above 1).
 */
import type * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';

/** Row sums may differ from 1 by float32 rounding of a softmax over up to ~1000 classes. */
export const ROW_SUM_TOLERANCE = 1e-3;

/** Checks the output's shape before anything reads it; `columns` is what the label space expects. */
export function checkOutputShape(out: unknown, n: number, columns: number, method: string, batch: number): void {
  const shape = (out as tf.Tensor | undefined)?.shape;
  if (!Array.isArray(shape)) {
    throw bad(method, batch, `${out === undefined ? 'undefined' : typeof out} instead of a tensor`, "return a [N, K] tf.Tensor of probabilities from predict()");
  }
  if (shape.length !== 2 || shape[0] !== n || shape[1] !== columns) {
    throw bad(method, batch, `a tensor of shape [${shape.join(', ')}], expected [${n}, ${columns}] (batch size, classes of the model's head)`, 'return one row of class probabilities per image');
  }
}

/** Checks the values of [n, k] probabilities (row-major). */
export function checkProbabilities(probs: Float32Array, n: number, k: number, method: string, batch: number): void {
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const p = probs[i * k + j]!;
      if (!Number.isFinite(p)) {
        throw bad(method, batch, `${p} at row ${i}, column ${j}`, 'the method diverged (e.g. lower its learning rate)', );
      }
      if (p < -ROW_SUM_TOLERANCE) {
        throw bad(method, batch, `a negative probability (${p.toPrecision(4)}) at row ${i}, column ${j}: logits, not probabilities?`, 'apply softmax to the logits before returning them');
      }
      sum += p;
    }
    if (Math.abs(sum - 1) > ROW_SUM_TOLERANCE) {
      throw bad(method, batch, `row ${i} summing to ${sum.toPrecision(6)}, not 1: logits or unnormalised scores?`, 'return probabilities (softmax, or divide by the row sum)');
    }
  }
}

/** `batch` -1: a held-out evaluation (evaluate()), not a stream batch. */
function bad(method: string, batch: number, found: string, fix: string): CttaError {
  const where = batch < 0 ? 'in held-out evaluation' : `at batch ${batch}`;
  // exit 1: the run failed; the user's input (scenario, options) was fine.
  return new CttaError(`method "${method}" returned ${found} ${where}`, { fix, exitCode: 1 });
}
