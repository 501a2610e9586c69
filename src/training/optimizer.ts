/** Optimizers for training and adaptation, with a dispose that frees everything they hold. */
import * as tf from '@tensorflow/tfjs';

export type OptimizerKind = 'sgd' | 'adam';

export interface OptimizerOptions {
  lr: number;
  /** SGD momentum (0 = plain SGD). */
  momentum?: number;
  nesterov?: boolean;
  beta1?: number;
  beta2?: number;
}

export function createOptimizer(kind: OptimizerKind, o: OptimizerOptions): tf.Optimizer {
  if (kind === 'adam') return tf.train.adam(o.lr, o.beta1 ?? 0.9, o.beta2 ?? 0.999);
  if (!o.momentum) return tf.train.sgd(o.lr);
  return tf.train.momentum(o.lr, o.momentum, o.nesterov ?? false);
}

export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  // Not `instanceof tf.SGDOptimizer`: tfjs optimizers answer instanceof by duck typing, so every
  // optimizer (Adam too) passes it.
  const sgd = optimizer as unknown as { setLearningRate?: (lr: number) => void };
  if (typeof sgd.setLearningRate === 'function') sgd.setLearningRate(lr);
  else (optimizer as unknown as { learningRate: number }).learningRate = lr; // Adam reads it per step
}

/**
 * tfjs 4.22's MomentumOptimizer.dispose forgets the learning-rate scalar its SGD base class
 * keeps (one tensor leaked per optimizer); free it here.
 */
export function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  const c = (optimizer as unknown as { c?: tf.Tensor }).c;
  if (optimizer instanceof tf.MomentumOptimizer && c && !c.isDisposed) c.dispose();
}
