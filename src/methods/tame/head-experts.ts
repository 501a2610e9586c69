/**
 * TAME's experts as heads on one shared backbone ('head' mode): the run's network up to its
 * features is the backbone, and each expert is a head over all K classes on those features,
 * with its own optimiser. The network's own head is not used (its copy is expert 0's start).
 *
 *  - `hidden: 0`: a linear head. Expert 0 starts as a copy of the network's head (a trained
 *    checkpoint keeps its classifier as expert 0).
 *  - `hidden: h > 0`: a small MLP, features -> h (ReLU) -> K, initialised as PyTorch's
 *    nn.Linear (U(-1/sqrt(in), 1/sqrt(in)) for weights and biases) from the run's rng.
 *  - `backbone: 'frozen'` (the paper's shared frozen backbone reading): only heads train, the
 *    backbone keeps its weights and BatchNorm statistics, so an old head sees the features it
 *    was trained on. `'train'`: each step also trains the backbone (one optimiser of its own,
 *    shared by all experts; BatchNorm in training mode), so old heads drift with it.
 * New experts start from expert 0's initial values (`'initial'`) or copy an existing head.
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../../models/network.js';
import type { Rng } from '../../util/rng.js';
import { tensorBytes } from '../base/frozen-method.js';
import { crossEntropy } from '../er.js';
import { applyAndDispose, assembleRouted, scalarOf, trainingPass, withBatchStatistics, type ExpertPool } from './expert-pool.js';
import { ParamGroup, type ParamGroupSpec } from './param-group.js';

export interface HeadExpertsOptions {
  hidden: number;
  backbone: 'frozen' | 'train';
  spec: ParamGroupSpec;
  rng: Rng;
}

/** The network's classifier layer (the last Dense), as Network finds it. */
function headLayer(network: Network): tf.layers.Layer {
  const model = network.model;
  const graph = model instanceof tf.Sequential ? (model as unknown as { model: tf.LayersModel }).model : model;
  return graph.outputLayers[0]!;
}

/** A tensor with its own copy of `t`'s values (not sharing its data, so byte counts stay exact). */
function ownCopy(t: tf.Tensor): tf.Tensor {
  return tf.tensor(t.dataSync(), t.shape, t.dtype);
}

export class HeadExperts implements ExpertPool {
  /** Expert 0's initial values: [kernel, bias] or [w1, b1, w2, b2]. */
  private readonly initial: tf.Tensor[];
  private readonly heads: { variables: tf.Variable[]; group: ParamGroup }[] = [];
  /** The backbone's trained variables and their optimiser ('train' only). */
  private readonly backbone?: ParamGroup;

  constructor(
    private readonly name: string,
    private readonly network: Network,
    private readonly o: HeadExpertsOptions,
  ) {
    const head = headLayer(network);
    if (o.hidden === 0) {
      this.initial = ['kernel', 'bias'].map((suffix) => {
        const w = head.weights.find((v) => v.originalName.endsWith(`/${suffix}`));
        return w ? ownCopy(w.read()) : tf.zeros([network.numClasses]);
      });
    } else {
      const uniform = (shape: number[], fanIn: number) => {
        const bound = 1 / Math.sqrt(fanIn);
        const n = shape.reduce((a, b) => a * b, 1);
        return tf.tensor(Float32Array.from({ length: n }, () => bound * (2 * o.rng.float() - 1)), shape);
      };
      const [d, h, k] = [network.featureDim, o.hidden, network.numClasses];
      this.initial = [uniform([d, h], d), uniform([h], d), uniform([h, k], h), uniform([k], h)];
    }
    if (o.backbone === 'train') {
      const headNames = new Set(head.weights.map((w) => w.originalName));
      const body = [...network.namedTrainables()].filter(([name]) => !headNames.has(name)).map(([, v]) => v);
      this.backbone = new ParamGroup(body, o.spec);
    }
    this.addHead(this.initial);
  }

  get size(): number {
    return this.heads.length;
  }

  predict(x: tf.Tensor4D, assignment?: Int32Array): tf.Tensor2D {
    return tf.tidy(() => {
      const f = this.network.features(x);
      return assembleRouted(x.shape[0], assignment, (e, rows) => tf.softmax(this.logits(e, rows ? (tf.gather(f, rows) as tf.Tensor2D) : f)));
    });
  }

  losses(experts: readonly number[], x: tf.Tensor4D, y: tf.Tensor1D): number[] {
    // The features as training sees them: running statistics for a frozen backbone, the batch's
    // for a trained one.
    const f = this.backbone ? withBatchStatistics([this.network], () => this.network.features(x)) : this.network.features(x);
    try {
      return experts.map((e) => scalarOf(() => crossEntropy(this.logits(e, f), y)));
    } finally {
      f.dispose();
    }
  }

  train(e: number, x: tf.Tensor4D, y: tf.Tensor1D): number {
    const head = this.heads[e]!;
    if (!this.backbone) {
      // Frozen: the features are constants (running statistics, no gradient into the backbone).
      const f = this.network.features(x);
      try {
        const { value, grads } = trainingPass(this.name, [], head.variables, () => crossEntropy(this.logits(e, f), y));
        applyAndDispose(grads, [head.group]);
        return value;
      } finally {
        f.dispose();
      }
    }
    const variables = [...this.backbone.variables, ...head.variables];
    const { value, grads } = trainingPass(this.name, [this.network], variables, () => crossEntropy(this.logits(e, this.network.features(x)), y));
    applyAndDispose(grads, [this.backbone, head.group]);
    return value;
  }

  async spawn(from: 'initial' | number): Promise<number> {
    this.addHead(from === 'initial' ? this.initial : this.heads[from]!.variables);
    return this.heads.length - 1;
  }

  bytes(): number {
    let bytes = 0;
    for (const t of this.initial) bytes += tensorBytes(t);
    for (const h of this.heads) for (const v of h.variables) bytes += tensorBytes(v);
    return bytes;
  }

  optimizerBytes(): number {
    return this.heads.reduce((sum, h) => sum + h.group.bytes(), this.backbone?.bytes() ?? 0);
  }

  reset(): void {
    for (const h of this.heads.splice(1)) {
      h.group.clear();
      tf.dispose(h.variables);
    }
    const first = this.heads[0]!;
    first.group.clear();
    first.variables.forEach((v, i) => {
      const copy = ownCopy(this.initial[i]!);
      v.assign(copy);
      copy.dispose();
    });
    this.backbone?.clear();
  }

  dispose(): void {
    for (const h of this.heads.splice(0)) {
      h.group.clear();
      tf.dispose(h.variables);
    }
    this.backbone?.clear();
    tf.dispose(this.initial);
  }

  /** Logits of head `e` on features `f`. */
  private logits(e: number, f: tf.Tensor2D): tf.Tensor2D {
    const v = this.heads[e]!.variables;
    return tf.tidy(() => {
      if (v.length === 2) return tf.add(tf.matMul(f, v[0]!), v[1]!) as tf.Tensor2D;
      const hidden = tf.relu(tf.add(tf.matMul(f, v[0]!), v[1]!)) as tf.Tensor2D;
      return tf.add(tf.matMul(hidden, v[2]!), v[3]!) as tf.Tensor2D;
    });
  }

  private addHead(values: readonly tf.Tensor[]): void {
    // Unnamed variables: tfjs names are global and two runs may live at once.
    const variables = values.map((t) => {
      const copy = ownCopy(t);
      const v = tf.variable(copy, true);
      copy.dispose(); // the variable keeps the data
      return v;
    });
    this.heads.push({ variables, group: new ParamGroup(variables, this.o.spec) });
  }
}
