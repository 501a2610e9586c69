/**
 * One optimiser over one fixed set of variables (an expert, the shared backbone, the selector),
 * created lazily, with PyTorch-style weight decay (L2 added to the gradient). TAME needs one per
 * expert: tfjs optimisers keep their slots (Adam moments, momentum) by the position of a variable
 * in the update, so one optimiser cannot serve several variable sets.
 */
import * as tf from '@tensorflow/tfjs';
import { optimizerBytes } from '../base/gradient-method.js';
import { createOptimizer, disposeOptimizer, type OptimizerKind, type OptimizerOptions } from '../../training/optimizer.js';

export interface ParamGroupSpec extends OptimizerOptions {
  kind: OptimizerKind;
  /** L2 coefficient added to every gradient (0 = none). */
  weightDecay: number;
}

export class ParamGroup {
  private optimizer?: tf.Optimizer;

  constructor(
    readonly variables: readonly tf.Variable[],
    private readonly spec: ParamGroupSpec,
  ) {}

  /** One update with the gradients of this group's variables found in `grads` (keyed by variable name; not disposed here). */
  apply(grads: tf.NamedTensorMap): void {
    const update: tf.NamedTensorMap = {};
    const made: tf.Tensor[] = [];
    for (const v of this.variables) {
      const g = grads[v.name];
      if (!g) continue;
      if (this.spec.weightDecay > 0) {
        const d = tf.tidy(() => g.add(v.mul(this.spec.weightDecay)));
        made.push(d);
        update[v.name] = d;
      } else {
        update[v.name] = g;
      }
    }
    try {
      if (Object.keys(update).length === 0) return;
      this.optimizer ??= createOptimizer(this.spec.kind, this.spec);
      this.optimizer.applyGradients(update);
    } finally {
      tf.dispose(made);
    }
  }

  /** Bytes of the optimiser's state (0 before its first step). */
  bytes(): number {
    return this.optimizer ? optimizerBytes(this.optimizer) : 0;
  }

  /** Drops the optimiser's state (a fresh one is made at the next step). */
  clear(): void {
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = undefined;
  }
}
