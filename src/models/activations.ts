/** Keras activation names -> tf ops, for layers that `Network` executes itself. */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';

const ACTIVATIONS: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  linear: (x) => x,
  relu: (x) => tf.relu(x),
  relu6: (x) => tf.relu6(x),
  elu: (x) => tf.elu(x),
  selu: (x) => tf.selu(x),
  sigmoid: (x) => tf.sigmoid(x),
  tanh: (x) => tf.tanh(x),
  softmax: (x) => tf.softmax(x),
  softplus: (x) => tf.softplus(x),
  swish: (x) => tf.mul(x, tf.sigmoid(x)),
  gelu: (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))),
};

export function activation(name: string | undefined | null, layerName: string): (x: tf.Tensor) => tf.Tensor {
  const fn = ACTIVATIONS[name ?? 'linear'];
  if (!fn) {
    throw new CttaError(`layer "${layerName}" uses activation "${name}", which ctta cannot execute`, {
      fix: `use one of ${Object.keys(ACTIVATIONS).join(', ')}`,
    });
  }
  return fn;
}
