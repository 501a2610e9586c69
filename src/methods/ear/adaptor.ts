/**
 * EAR's adaptor for one domain, in one fixed shape (the paper picks each adaptor's architecture
 * by zero-shot NAS; that search is out of scope here):
 *
 *   hidden   = relu(z W1 + b1)              z: the tapped layers' pooled outputs, standardised
 *   features = f + hidden W2 + b2           f: the frozen encoder's penultimate features
 *   logits   = features Wh + bh             its own classifier (the paper's "reconfigurator")
 *
 * A small residual network on top of the frozen encoder that sees every tapped depth (the early
 * layers carry most of a low-level corruption) and corrects the features the head reads. W2 and
 * b2 start at zero and the head starts as a copy of the base model's, so a fresh adaptor predicts
 * exactly what the base model does and training can only move it from there.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../util/rng.js';
import { tensorBytes } from '../base/frozen-method.js';

export interface AdaptorShape {
  /** Width of z (the channels of every tapped layer). */
  inputDim: number;
  /** Width of f (the encoder's penultimate features). */
  featureDim: number;
  hidden: number;
  numClasses: number;
}

export class Adaptor {
  readonly variables: tf.Variable[];
  private readonly w1: tf.Variable;
  private readonly b1: tf.Variable;
  private readonly w2: tf.Variable;
  private readonly b2: tf.Variable;
  private readonly wh: tf.Variable;
  private readonly bh: tf.Variable;

  /** `head`: the base model's classifier (kernel [F, K] row-major, bias [K]), copied. W1 ~ He-normal from `rng`. */
  constructor(
    readonly shape: AdaptorShape,
    head: { kernel: Float32Array; bias: Float32Array },
    rng: Rng,
  ) {
    const { inputDim, featureDim, hidden, numClasses } = shape;
    const std = Math.sqrt(2 / inputDim);
    this.w1 = owned(Float32Array.from({ length: inputDim * hidden }, () => rng.normal(0, std)), [inputDim, hidden]);
    this.b1 = owned(new Float32Array(hidden), [hidden]);
    this.w2 = owned(new Float32Array(hidden * featureDim), [hidden, featureDim]);
    this.b2 = owned(new Float32Array(featureDim), [featureDim]);
    this.wh = owned(head.kernel, [featureDim, numClasses]);
    this.bh = owned(head.bias, [numClasses]);
    this.variables = [this.w1, this.b1, this.w2, this.b2, this.wh, this.bh];
  }

  /** Logits [N, K] from standardised taps `z` [N, inputDim] and features `f` [N, F]. */
  logits(z: tf.Tensor2D, f: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const hidden = tf.relu(tf.add(tf.matMul(z, this.w1), this.b1));
      const adapted = tf.add(f, tf.add(tf.matMul(hidden, this.w2), this.b2));
      return tf.add(tf.matMul(adapted, this.wh), this.bh) as tf.Tensor2D;
    });
  }

  bytes(): number {
    return this.variables.reduce((s, v) => s + tensorBytes(v), 0);
  }

  dispose(): void {
    tf.dispose(this.variables);
  }
}

/**
 * A trainable variable holding a copy of `values` (unnamed: tfjs variable names are global and
 * two instances may live at once). The initial tensor is freed: the variable keeps the data.
 */
function owned(values: Float32Array, shape: number[]): tf.Variable {
  const init = tf.tensor(values, shape);
  const v = tf.variable(init, true);
  init.dispose();
  return v;
}
