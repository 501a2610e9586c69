/**
 * TAME's selector network: it reads an input (the flattened image, or the frozen backbone's
 * features) and says which expert should classify it. The paper trains it on "a small subset of
 * data drawn uniformly at random" labelled with the expert that was active when each sample was
 * seen, and routes every test sample to its argmax.
 *
 * Ours is a small MLP, input -> `hidden` (ReLU) -> `outputs` logits (one per expert slot; `hidden:
 * 0` is a linear layer), initialised as PyTorch's nn.Linear (U(-1/sqrt(in), 1/sqrt(in))) from
 * the run's rng. Only the first E logits are used while there are E experts, so the network
 * never changes shape when an expert is added (the unused slots' weights stay at their initial
 * values until their expert exists).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../util/rng.js';
import { tensorBytes } from '../base/frozen-method.js';
import { crossEntropy } from '../er.js';
import { applyAndDispose, trainingPass } from './expert-pool.js';
import { ParamGroup, type ParamGroupSpec } from './param-group.js';

export interface SelectorOptions {
  inputDim: number;
  /** Width of the hidden layer (0 = a linear selector). */
  hidden: number;
  /** Expert slots (the most experts there can be). */
  outputs: number;
  spec: ParamGroupSpec;
  rng: Rng;
}

export class Selector {
  private readonly variables: tf.Variable[];
  private readonly initial: tf.Tensor[];
  private readonly group: ParamGroup;

  constructor(
    private readonly name: string,
    o: SelectorOptions,
  ) {
    const uniform = (shape: number[], fanIn: number) => {
      const bound = 1 / Math.sqrt(fanIn);
      const n = shape.reduce((a, b) => a * b, 1);
      return tf.tensor(Float32Array.from({ length: n }, () => bound * (2 * o.rng.float() - 1)), shape);
    };
    const { inputDim: d, hidden: h, outputs: m } = o;
    this.initial = h === 0 ? [uniform([d, m], d), uniform([m], d)] : [uniform([d, h], d), uniform([h], d), uniform([h, m], h), uniform([m], h)];
    this.variables = this.initial.map((t) => {
      // Its own copy of the values (not the initial tensor's data), so reset can restore them.
      const copy = tf.tensor(t.dataSync(), t.shape);
      const v = tf.variable(copy, true);
      copy.dispose();
      return v;
    });
    this.group = new ParamGroup(this.variables, o.spec);
  }

  /** Logits over the first `experts` slots, [N, experts]. */
  logits(input: tf.Tensor2D, experts: number): tf.Tensor2D {
    const v = this.variables;
    return tf.tidy(() => {
      let z = tf.add(tf.matMul(input, v[0]!), v[1]!) as tf.Tensor2D;
      if (v.length === 4) z = tf.add(tf.matMul(tf.relu(z), v[2]!), v[3]!) as tf.Tensor2D;
      return tf.slice(z, [0, 0], [-1, experts]) as tf.Tensor2D;
    });
  }

  /** The expert each row is routed to (the argmax over the first `experts` slots). */
  choose(input: tf.Tensor2D, experts: number): Int32Array {
    const best = tf.tidy(() => tf.argMax(this.logits(input, experts), 1));
    const out = Int32Array.from(best.dataSync());
    best.dispose();
    return out;
  }

  /** One optimiser step on the mean cross-entropy of `targets` (expert indices < experts); returns the loss. */
  step(input: tf.Tensor2D, targets: tf.Tensor1D, experts: number): number {
    const { value, grads } = trainingPass(this.name, [], this.variables, () => crossEntropy(this.logits(input, experts), targets));
    applyAndDispose(grads, [this.group]);
    return value;
  }

  bytes(): number {
    let bytes = 0;
    for (const t of [...this.initial, ...this.variables]) bytes += tensorBytes(t);
    return bytes;
  }

  optimizerBytes(): number {
    return this.group.bytes();
  }

  /** Back to the initial weights and a fresh optimiser. */
  reset(): void {
    this.variables.forEach((v, i) => {
      const copy = tf.tensor(this.initial[i]!.dataSync(), this.initial[i]!.shape);
      v.assign(copy);
      copy.dispose();
    });
    this.group.clear();
  }

  dispose(): void {
    this.group.clear();
    tf.dispose([...this.variables, ...this.initial]);
  }
}
