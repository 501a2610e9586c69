/**
 * `Network` runs a tfjs LayersModel layer by layer instead of through `model.predict`.
 *
 * Why not just call the model: adaptation methods need to (a) choose the statistics every norm
 * layer uses, (b) read the penultimate features and the logits from one pass, (c) add parallel
 * branches to chosen layers (ViDA adapters) and (d) differentiate with respect to any subset of
 * weights. Executing the graph ourselves gives all four for any LayersModel - the zoo's own
 * models and models converted from Keras alike - while weights stay in the LayersModel, so
 * saving and loading use the standard tfjs format.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import { activation } from './activations.js';
import { GroupNormalization } from './layers/group-norm.js';
import { NormLayer, type NormStatistics } from './norm.js';
import { spatialMean } from './reductions.js';

/** What a layer-level hook sees (e.g. ViDA wraps conv and dense layers with adapters). */
export interface LayerCall {
  readonly layer: tf.layers.Layer;
  readonly className: string;
  readonly input: tf.Tensor;
  readonly output: tf.Tensor;
}
/** Returns the layer's (possibly modified) output. Runs inside the forward pass's tf.tidy. */
export type LayerHook = (call: LayerCall) => tf.Tensor;

/**
 * Returns the kernel a Conv2D or Dense layer computes with, given its own (or the kernel itself
 * when it leaves the layer alone). Runs inside the forward pass's tf.tidy and under the tape when
 * one records, so gradients reach whatever the result is made of. A linear branch beside a layer
 * (ViDA's adapters) is a change of kernel: the layer then does one convolution, not three.
 */
export type KernelTransform = (layerName: string, kernel: tf.Tensor) => tf.Tensor;

/** Extra weights that live beside the LayersModel (ViDA adapters), saved with checkpoints. */
export interface AdapterSet {
  readonly kind: string;
  readonly options: object;
  /** Every adapter weight by a stable name. */
  namedVariables(): Map<string, tf.Variable>;
  /** A copy with the same weights, attached to `network` (same architecture). */
  copyTo(network: Network): AdapterSet;
  dispose(): void;
}

/** How the network was made, so a checkpoint can rebuild it. */
export interface NetworkSpec {
  architecture: string;
  options: Record<string, unknown>;
}

interface Step {
  layer: tf.layers.Layer;
  className: string;
  inputs: string[];
  run: (inputs: tf.Tensor[]) => tf.Tensor;
}

/**
 * A Conv2D whose only consumer is a BatchNormalization (and, optionally, that norm's only
 * consumer a ReLU): the three can run as one fused convolution while the norm uses stored
 * statistics (see `Network.foldNorms`).
 */
interface FoldGroup {
  norm: NormLayer;
  /** Names of the layers the fused step replaces after the conv (the norm, then the ReLU if any). */
  skipped: string[];
  /** Where the fused result is stored: the last layer of the group. */
  outputName: string;
  fused: (x: tf.Tensor4D) => tf.Tensor4D;
}

export interface ForwardResult {
  features: tf.Tensor2D;
  logits: tf.Tensor2D;
}

export class Network {
  readonly norms: NormLayer[] = [];
  /** [height, width, channels] the model expects (float input in [0, 1]). */
  readonly inputShape: [number, number, number];
  readonly numClasses: number;
  readonly featureDim: number;
  /** Layer hooks, applied in insertion order after each layer's own computation. */
  readonly hooks: LayerHook[] = [];
  /** Kernel transforms, applied in insertion order to each Conv2D/Dense kernel before it is used. */
  readonly kernelTransforms: KernelTransform[] = [];
  /** Adapters attached to this network (they add a hook or a kernel transform), if any. */
  adapters?: AdapterSet;
  /**
   * Conv -> BatchNorm (-> ReLU) runs as one convolution with the norm folded into its weights and
   * bias (and the ReLU fused) whenever that norm normalises with its stored statistics and no
   * hook or kernel transform is attached: the frozen-statistics passes (Source, LAME, analytic
   * backbones, held-out evaluation) then skip two full-size elementwise passes per conv. Same function up to float32
   * rounding (tests/bn-fold.test.ts: logits within 1e-5 relative); gradients flow through the
   * fold to the conv kernel and the norm's gamma/beta alike. Set false for the layer-by-layer path.
   */
  foldNorms = true;
  private readonly steps: Step[] = [];
  /** Fold groups by the name of their Conv2D layer. */
  private readonly folds = new Map<string, FoldGroup>();
  /** For each step, the values (by layer name) no later step reads; the features are never among them. */
  private readonly lastReadAt: string[][];
  private readonly inputName: string;
  private readonly featureName: string;
  private readonly headKernel: tf.Variable;
  private readonly headBias: tf.Variable | undefined;

  constructor(
    readonly model: tf.LayersModel,
    readonly spec: NetworkSpec,
  ) {
    // A Sequential keeps its graph in an inner functional model, made on first build.
    if (model instanceof tf.Sequential && !(model as unknown as { model?: tf.LayersModel }).model) model.build();
    const graph = model instanceof tf.Sequential ? (model as unknown as { model: tf.LayersModel }).model : model;
    if (model.inputs.length !== 1 || model.outputs.length !== 1) {
      throw new CttaError(`model "${model.name}" has ${model.inputs.length} inputs and ${model.outputs.length} outputs`, {
        fix: 'ctta needs an image classifier with one image input and one class output',
      });
    }
    const shape = model.inputs[0]!.shape;
    if (shape.length !== 4) {
      throw new CttaError(`model "${model.name}" takes input of shape [${shape.join(', ')}], not images`, {
        fix: 'the model input must be [batch, height, width, channels]',
      });
    }
    this.inputShape = [shape[1]!, shape[2]!, shape[3]!];
    this.inputName = graph.inputLayers[0]!.name;
    const head = graph.outputLayers[0]!;
    if (head.getClassName() !== 'Dense') {
      throw new CttaError(`the last layer of model "${model.name}" is ${head.getClassName()} "${head.name}", not Dense`, {
        fix: 'ctta splits models into features + a Dense classifier head; end the model with a Dense layer',
      });
    }
    this.featureName = inboundNames(head)[0]!;
    this.headKernel = variableOf(head, 'kernel')!;
    this.headBias = variableOf(head, 'bias');
    this.numClasses = this.headKernel.shape[1]!;
    this.featureDim = this.headKernel.shape[0]!;
    for (const layer of graph.layers) {
      if (layer === head || layer.getClassName() === 'InputLayer') continue;
      this.steps.push(this.compile(layer));
    }
    this.findFoldGroups(graph);
    const last = new Map<string, number>();
    this.steps.forEach((step, i) => step.inputs.forEach((name) => last.set(name, i)));
    this.lastReadAt = this.steps.map(() => []);
    for (const [name, i] of last) if (name !== this.featureName) this.lastReadAt[i]!.push(name);
  }

  /** Penultimate features (the head's input), shape [N, featureDim]. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => this.runBody(x));
  }

  /** Class logits from features: the linear head without any output activation. */
  head(features: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const z = tf.matMul(features, this.headKernel);
      return (this.headBias ? z.add(this.headBias) : z) as tf.Tensor2D;
    });
  }

  /**
   * The head's own Variables (kernel [featureDim, K]: column c is class c's weight vector; bias
   * [K] when present), for methods that build their own logits from them (UER's cosine logits).
   */
  headVariables(): { kernel: tf.Variable; bias?: tf.Variable } {
    return { kernel: this.headKernel, bias: this.headBias };
  }

  logits(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => this.head(this.runBody(x)));
  }

  /** Features and logits from one pass. */
  forward(x: tf.Tensor4D): ForwardResult {
    return tf.tidy(() => {
      const features = this.runBody(x);
      return { features, logits: this.head(features) };
    });
  }

  /** The layers the forward pass runs before the head, in order. */
  bodyLayers(): tf.layers.Layer[] {
    return this.steps.map((s) => s.layer);
  }

  /** Sets how every BatchNorm layer normalises (see NormLayer). */
  setNormStatistics(statistics: NormStatistics, options: { alpha?: number; momentum?: number } = {}): void {
    for (const n of this.norms) {
      n.statistics = statistics;
      n.alpha = options.alpha ?? 1;
      n.momentum = options.momentum;
    }
  }

  /** Runs `fn` with every norm layer's running statistics read-only (held-out evaluation). */
  withFrozenStatistics<T>(fn: () => T): T {
    const before = this.norms.map((n) => n.frozen);
    this.norms.forEach((n) => (n.frozen = true));
    try {
      return fn();
    } finally {
      this.norms.forEach((n, i) => (n.frozen = before[i]!));
    }
  }

  /**
   * Every weight (trainable or not) keyed by its stable name, e.g. `s1_b0_conv1/kernel`,
   * including attached adapters (`vida/<layer>/...`).
   */
  namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const w of this.model.weights) out.set(w.originalName, w.read() as tf.Variable);
    for (const [name, v] of this.adapters?.namedVariables() ?? []) out.set(name, v);
    return out;
  }

  /**
   * What a full fine-tune trains, by name: kernels, biases, norm affine parameters (not running
   * statistics), and attached adapters.
   */
  namedTrainables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const w of this.model.trainableWeights) out.set(w.originalName, w.read() as tf.Variable);
    for (const [name, v] of this.adapters?.namedVariables() ?? []) out.set(name, v);
    return out;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.namedTrainables().values()];
  }

  /** Norm layers' gamma and beta only (TENT and friends). */
  normAffineVariables(): tf.Variable[] {
    return this.norms.flatMap((n) => n.affineVariables());
  }

  /** A deep copy with the same architecture, weights, adapters and norm settings (for teachers, anchors). */
  async clone(): Promise<Network> {
    const topology = this.model.toJSON(null, false) as tf.io.ModelJSON['modelTopology'];
    const copy = await tf.models.modelFromJSON({ modelTopology: topology } as never);
    const weights = this.model.getWeights();
    copy.setWeights(weights);
    const net = new Network(copy, { ...this.spec, options: { ...this.spec.options } });
    net.norms.forEach((n, i) => {
      const src = this.norms[i]!;
      n.statistics = src.statistics;
      n.alpha = src.alpha;
      n.momentum = src.momentum;
    });
    this.adapters?.copyTo(net);
    return net;
  }

  /** Copies all weights (including running statistics) from a network of the same architecture. */
  copyWeightsFrom(other: Network): void {
    this.model.setWeights(other.model.getWeights());
  }

  /** Bytes held by the model's weights. */
  weightBytes(): number {
    return this.model.weights.reduce((sum, w) => sum + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1) * 4, 0);
  }

  dispose(): void {
    this.adapters?.dispose();
    this.model.dispose();
  }

  private runBody(x: tf.Tensor4D): tf.Tensor2D {
    const [h, w, c] = this.inputShape;
    if (x.rank !== 4 || x.shape[1] !== h || x.shape[2] !== w || x.shape[3] !== c) {
      throw new CttaError(`input batch has shape [${x.shape.join(', ')}] but the model expects [N, ${h}, ${w}, ${c}]`, {
        fix: 'resize the images or use a model trained for this image size',
      });
    }
    const values = new Map<string, tf.Tensor>([[this.inputName, x]]);
    // Without hooks nothing outside sees the intermediate outputs, so each is freed after its last
    // reader: peak memory is then a few activations, not all of them (a tape, if one records,
    // keeps its own references to what backprop needs).
    const hooked = this.hooks.length > 0;
    const fold = this.foldNorms && !hooked && this.kernelTransforms.length === 0;
    const skip = new Set<string>();
    this.steps.forEach((step, i) => {
      if (skip.has(step.layer.name)) return;
      const inputs = step.inputs.map((name) => values.get(name)!);
      const group = fold ? this.folds.get(step.layer.name) : undefined;
      if (group && group.norm.usesStoredStatistics()) {
        values.set(group.outputName, group.fused(inputs[0] as tf.Tensor4D));
        group.skipped.forEach((name) => skip.add(name));
      } else {
        let out = step.run(inputs);
        for (const hook of this.hooks) {
          out = hook({ layer: step.layer, className: step.className, input: inputs[0]!, output: out });
        }
        values.set(step.layer.name, out);
      }
      if (!hooked) {
        for (const name of this.lastReadAt[i]!) {
          const t = values.get(name);
          values.delete(name);
          // Never the caller's input, nor a tensor that another live value is (Dropout passes x through).
          if (t !== undefined && t !== x && ![...values.values()].includes(t)) t.dispose();
        }
      }
    });
    const f = values.get(this.featureName)!;
    if (f.rank !== 2) {
      throw new CttaError(`the features feeding the head of "${this.model.name}" have rank ${f.rank}`, {
        fix: 'put a GlobalAveragePooling2D or Flatten layer before the final Dense layer',
      });
    }
    return f as tf.Tensor2D;
  }

  /**
   * Conv2D (no activation, dilation 1 or any) -> BatchNormalization -> optional ReLU chains in
   * which each layer's output feeds only the next one, and the head reads none of them.
   */
  private findFoldGroups(graph: tf.LayersModel): void {
    const consumers = new Map<string, string[]>();
    for (const step of this.steps) {
      for (const name of step.inputs) consumers.set(name, [...(consumers.get(name) ?? []), step.layer.name]);
    }
    const byName = new Map(this.steps.map((s) => [s.layer.name, s]));
    const onlyConsumer = (name: string): Step | undefined => {
      const c = consumers.get(name);
      if (!c || c.length !== 1 || name === this.featureName || graph.outputLayers.some((l) => l.name === name)) return undefined;
      return byName.get(c[0]!);
    };
    for (const step of this.steps) {
      if (step.className !== 'Conv2D') continue;
      const config = step.layer.getConfig() as Record<string, unknown>;
      if (config['activation'] !== 'linear') continue;
      const bnStep = onlyConsumer(step.layer.name);
      if (bnStep?.className !== 'BatchNormalization') continue;
      const norm = this.norms.find((n) => n.name === bnStep.layer.name)!;
      const next = onlyConsumer(bnStep.layer.name);
      const nextConfig = next?.layer.getConfig() as Record<string, unknown> | undefined;
      const relu =
        next !== undefined &&
        ((next.className === 'ReLU' && nextConfig!['maxValue'] == null && !nextConfig!['negativeSlope'] && !nextConfig!['threshold']) ||
          (next.className === 'Activation' && nextConfig!['activation'] === 'relu'));
      const kernel = variableOf(step.layer, 'kernel')! as tf.Tensor4D;
      const bias = config['useBias'] ? (variableOf(step.layer, 'bias') as tf.Tensor1D) : undefined;
      const strides = pair(config['strides']);
      const dilations = pair(config['dilationRate']);
      const pad = config['padding'] as 'same' | 'valid';
      this.folds.set(step.layer.name, {
        norm,
        skipped: relu ? [bnStep.layer.name, next!.layer.name] : [bnStep.layer.name],
        outputName: relu ? next!.layer.name : bnStep.layer.name,
        fused: (x) => {
          const { scale, shift } = norm.storedAffine();
          return tf.fused.conv2d({
            x,
            filter: kernel.mul(scale) as tf.Tensor4D,
            strides,
            pad,
            dataFormat: 'NHWC',
            dilations,
            bias: bias ? bias.mul(scale).add(shift) : shift,
            activation: relu ? 'relu' : 'linear',
          });
        },
      });
    }
  }

  /** `kernel` after the kernel transforms (itself when there are none). */
  private kernelOf(layerName: string, kernel: tf.Tensor): tf.Tensor {
    return this.kernelTransforms.reduce((k, transform) => transform(layerName, k), kernel);
  }

  private compile(layer: tf.layers.Layer): Step {
    if (layer.inboundNodes.length !== 1) {
      throw new CttaError(`layer "${layer.name}" is shared between ${layer.inboundNodes.length} places`, {
        fix: 'ctta executes graphs whose layers are each used once',
      });
    }
    const className = layer.getClassName();
    const config = layer.getConfig() as Record<string, unknown>;
    const inputs = inboundNames(layer);
    const step = (run: (inputs: tf.Tensor[]) => tf.Tensor): Step => ({ layer, className, inputs, run });
    switch (className) {
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        requireChannelsLast(layer, config);
        const kernel = variableOf(layer, className === 'Conv2D' ? 'kernel' : 'depthwise_kernel')!;
        const bias = config['useBias'] ? variableOf(layer, 'bias') : undefined;
        const strides = pair(config['strides']);
        const dilations = pair(config['dilationRate']);
        const pad = config['padding'] as 'same' | 'valid';
        const act = activation(config['activation'] as string, layer.name);
        return step(([x]) => {
          let y =
            className === 'Conv2D'
              ? tf.conv2d(x as tf.Tensor4D, this.kernelOf(layer.name, kernel) as tf.Tensor4D, strides, pad, 'NHWC', dilations)
              : tf.depthwiseConv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, strides, pad, 'NHWC', dilations);
          if (bias) y = y.add(bias);
          return act(y);
        });
      }
      case 'Dense': {
        const kernel = variableOf(layer, 'kernel')!;
        const bias = config['useBias'] ? variableOf(layer, 'bias') : undefined;
        const act = activation(config['activation'] as string, layer.name);
        return step(([x]) => {
          const k = this.kernelOf(layer.name, kernel) as tf.Tensor2D;
          // Keras' Dense on rank > 2 applies the kernel to the last axis.
          const rows = x!.rank === 2 ? (x as tf.Tensor2D) : x!.reshape([-1, k.shape[0]]);
          let y: tf.Tensor = tf.matMul(rows as tf.Tensor2D, k);
          if (x!.rank !== 2) y = y.reshape([...x!.shape.slice(0, -1), k.shape[1]]);
          return act(bias ? y.add(bias) : y);
        });
      }
      case 'BatchNormalization': {
        const axis = config['axis'];
        if (!(axis === -1 || axis === 3 || (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3)))) {
          throw new CttaError(`BatchNormalization "${layer.name}" normalises axis ${JSON.stringify(axis)}`, {
            fix: 'ctta supports channels-last BatchNormalization (axis -1)',
          });
        }
        const norm = new NormLayer(
          layer.name,
          'batch',
          variableOf(layer, 'moving_mean')!.shape[0]!,
          (config['epsilon'] as number) ?? 1e-3,
          config['scale'] === false ? undefined : variableOf(layer, 'gamma'),
          config['center'] === false ? undefined : variableOf(layer, 'beta'),
          variableOf(layer, 'moving_mean'),
          variableOf(layer, 'moving_variance'),
        );
        this.norms.push(norm);
        return step(([x]) => norm.apply(x as tf.Tensor4D));
      }
      case GroupNormalization.className: {
        const gamma = variableOf(layer, 'gamma')!;
        const norm = new NormLayer(layer.name, 'group', gamma.shape[0]!, config['epsilon'] as number, gamma,
          variableOf(layer, 'beta'), undefined, undefined, config['groups'] as number);
        this.norms.push(norm);
        return step(([x]) => norm.apply(x as tf.Tensor4D));
      }
      case 'Activation': {
        const act = activation(config['activation'] as string, layer.name);
        return step(([x]) => act(x!));
      }
      case 'ReLU':
        if (config['maxValue'] == null) return step(([x]) => tf.relu(x!));
        break;
      case 'Add':
        return step((xs) => tf.addN(xs));
      case 'GlobalAveragePooling2D':
        requireChannelsLast(layer, config);
        return step(([x]) => spatialMean(x as tf.Tensor4D));
      case 'Flatten':
        return step(([x]) => tf.reshape(x!, [x!.shape[0]!, -1]));
      case 'Dropout':
        // Inference semantics: ctta's training recipes do not use dropout.
        return step(([x]) => x!);
    }
    // Anything else runs through the layer's own implementation (no norm/adapter control).
    return step((xs) => layer.apply(xs.length === 1 ? xs[0]! : xs) as tf.Tensor);
  }
}

function inboundNames(layer: tf.layers.Layer): string[] {
  const node = layer.inboundNodes[0]!;
  return node.inboundLayers.map((l) => l.name);
}

/** The layer's weight whose name ends in `/<suffix>` (Keras naming), as the underlying Variable. */
function variableOf(layer: tf.layers.Layer, suffix: string): tf.Variable | undefined {
  const w = layer.weights.find((v) => v.originalName.endsWith(`/${suffix}`));
  return w ? (w.read() as tf.Variable) : undefined;
}

function pair(v: unknown): [number, number] {
  if (typeof v === 'number') return [v, v];
  const a = v as number[];
  return [a[0]!, a[1] ?? a[0]!];
}

function requireChannelsLast(layer: tf.layers.Layer, config: Record<string, unknown>): void {
  if (config['dataFormat'] !== undefined && config['dataFormat'] !== 'channelsLast') {
    throw new CttaError(`layer "${layer.name}" uses ${String(config['dataFormat'])}`, {
      fix: 'convert the model to channels-last (NHWC)',
    });
  }
}
