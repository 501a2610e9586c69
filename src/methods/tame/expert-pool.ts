/**
 * TAME's experts as the method sees them, whatever an expert is (a whole network, or a head on a
 * shared backbone): a growing list, each with a loss on a labelled batch (as a training step sees
 * it; changes nothing), a training step, and per-row routed predictions (inference mode).
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import type { Network } from '../../models/network.js';
import { ParamGroup } from './param-group.js';

export interface ExpertPool {
  /** Experts so far (at least 1). */
  readonly size: number;
  /**
   * Probabilities [N, K]: row i is the softmax of expert `assignment[i]`'s logits for image i
   * (every row expert 0's when `assignment` is undefined). Inference mode; changes nothing.
   */
  predict(x: tf.Tensor4D, assignment?: Int32Array): tf.Tensor2D;
  /**
   * Mean cross-entropy of each listed expert on (x, y) as a training step sees the batch
   * (BatchNorm on its own statistics), without folding them into the running statistics;
   * changes nothing.
   */
  losses(experts: readonly number[], x: tf.Tensor4D, y: tf.Tensor1D): number[];
  /** One optimiser step of expert `e` on (x, y); returns the (pre-step) training loss. */
  train(e: number, x: tf.Tensor4D, y: tf.Tensor1D): number;
  /** A new expert, a copy of the initial expert or of expert `from`; returns its index. */
  spawn(from: 'initial' | number): Promise<number>;
  /** Bytes of the tensors the pool holds beyond the run's network (copies, heads, initial values). */
  bytes(): number;
  /** Bytes of the experts' optimiser state. */
  optimizerBytes(): number;
  /** Back to one expert at its initial values (the run's network itself is restored by the method). */
  reset(): void;
  dispose(): void;
}

/** Batch-norm momentum of a training pass: PyTorch's default, as OnlineLearner's. */
export const BN_MOMENTUM = 0.1;

/**
 * The gradients of `loss` with respect to `variables` from one pass with every network in
 * `training` normalising with batch statistics and folding them into its running statistics
 * (momentum 0.1), as a PyTorch training pass; back to running statistics afterwards. The caller
 * disposes the gradients.
 */
export function trainingPass(name: string, training: readonly Network[], variables: tf.Variable[], loss: () => tf.Scalar): { value: number; grads: tf.NamedTensorMap } {
  for (const n of training) n.setNormStatistics('batch', { momentum: BN_MOMENTUM });
  try {
    const { value: v, grads } = tf.variableGrads(loss, variables);
    const value = v.dataSync()[0]!;
    v.dispose();
    if (!Number.isFinite(value)) {
      tf.dispose(Object.values(grads));
      throw new CttaError(`${name}: the training loss is ${value}`, { fix: `lower the learning rate (--set ${name}.lr=...)` });
    }
    return { value, grads };
  } finally {
    for (const n of training) n.setNormStatistics('running');
  }
}

/**
 * Runs `fn` with every network in `nets` normalising with batch statistics without updating its
 * running statistics (a measurement as a training pass sees the batch), then back to running
 * statistics.
 */
export function withBatchStatistics<T>(nets: readonly Network[], fn: () => T): T {
  for (const n of nets) n.setNormStatistics('batch');
  try {
    return fn();
  } finally {
    for (const n of nets) n.setNormStatistics('running');
  }
}

/** The value of a scalar computed in `fn` (its tensors freed). */
export function scalarOf(fn: () => tf.Scalar): number {
  const t = tf.tidy(fn);
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
}

/** Applies `grads` with each group (each takes its own variables' gradients), then disposes them. */
export function applyAndDispose(grads: tf.NamedTensorMap, groups: readonly ParamGroup[]): void {
  try {
    for (const g of groups) g.apply(grads);
  } finally {
    tf.dispose(Object.values(grads));
  }
}

/** Rows of each expert in an assignment, experts in increasing order. */
export function rowsByExpert(assignment: Int32Array): [number, Int32Array][] {
  const rows = new Map<number, number[]>();
  assignment.forEach((e, i) => {
    let list = rows.get(e);
    if (!list) rows.set(e, (list = []));
    list.push(i);
  });
  return [...rows.entries()].sort((a, b) => a[0] - b[0]).map(([e, r]) => [e, Int32Array.from(r)]);
}

/**
 * Routed probabilities: each expert's `probabilities(e, rows)` for its rows of the batch, put
 * back in the batch's order. Experts see only their own rows (inference mode normalises each
 * image on its own, so a row's output does not depend on the others).
 */
export function assembleRouted(n: number, assignment: Int32Array | undefined, probabilities: (e: number, rows: tf.Tensor1D | undefined) => tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    if (!assignment) return probabilities(0, undefined);
    const groups = rowsByExpert(assignment);
    if (groups.length === 1) return probabilities(groups[0]![0], undefined);
    const parts: tf.Tensor2D[] = [];
    const inverse = new Int32Array(n);
    let position = 0;
    for (const [e, rows] of groups) {
      parts.push(probabilities(e, tf.tensor1d(rows, 'int32')));
      for (const r of rows) inverse[r] = position++;
    }
    return tf.gather(tf.concat(parts), tf.tensor1d(inverse, 'int32')) as tf.Tensor2D;
  });
}
