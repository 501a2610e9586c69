/**
 * ViDA adapters (Liu et al., ICLR 2024): two branches added in parallel to chosen conv / dense
 * layers,
 *   out = layer(x) + s_low * up_low(down_low(x)) + s_high * up_high(down_high(x)),
 * a low-rank branch (middle width 1) for domain-shared knowledge and a high-rank, over-complete
 * branch (middle width wider than the input) for domain-specific knowledge. No biases.
 *
 * For a conv layer the down projection is a conv with the layer's kernel size, stride, padding
 * and dilation (so the branch sees the same receptive field and produces the same output size)
 * and the up projection is 1x1; for a dense layer both are matrices. Init: down ~ N(0, (1/r)^2),
 * up = 0, so a fresh adapter set leaves the network's output unchanged. The branches are linear,
 * so they run merged into the layer's kernel (`effectiveKernel`): one convolution per layer.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import type { KernelTransform, Network } from '../network.js';
import { Rng } from '../../util/rng.js';

export interface VidaAdapterOptions {
  /** Which layers get adapters: 'blocks' (the zoo ResNets' residual-block convs), 'all' (every
   *  Conv2D / Dense in the body), or a regular expression on layer names. */
  layers: string;
  /** Middle width of the low-rank branch. */
  lowRank: number;
  /** Middle width of the high-rank branch as a multiple of the layer's input channels. */
  highRankFactor: number;
  /**
   * Std of the fresh down projections for a branch of middle width r: 1/r^2, as the authors'
   * injection code does (`std=1/r**2`), or 1/r (the earlier reading; the same for rank 1).
   * Only fresh adapters use it; checkpoints carry their trained values.
   */
  initStd?: '1/r^2' | '1/r';
}

export const VIDA_ADAPTER_DEFAULTS = { layers: 'blocks', lowRank: 1, highRankFactor: 2, initStd: '1/r^2' } as const satisfies VidaAdapterOptions;

interface Branch {
  down: tf.Variable;
  up: tf.Variable;
  /** Stable names (tfjs variable names must be unique per process, and teachers copy adapters). */
  downName: string;
  upName: string;
}

interface Adapted {
  low: Branch;
  high: Branch;
}

/** Names of the layers `options.layers` selects in `network`'s body. */
export function selectAdapterLayers(network: Network, selector: string): tf.layers.Layer[] {
  const body = network.bodyLayers().filter((l) => ['Conv2D', 'Dense'].includes(l.getClassName()));
  let pick: (l: tf.layers.Layer) => boolean;
  if (selector === 'all') pick = () => true;
  else if (selector === 'blocks') pick = (l) => /_conv\d+$/.test(l.name);
  else {
    let re: RegExp;
    try {
      re = new RegExp(selector);
    } catch (err) {
      throw new CttaError(`adapter layer pattern "${selector}" is not a regular expression (${(err as Error).message})`, { fix: "use 'blocks', 'all' or a pattern such as '^s3_'" });
    }
    pick = (l) => re.test(l.name);
  }
  const chosen = body.filter(pick);
  if (chosen.length === 0) {
    throw new CttaError(`adapter layer selection "${selector}" matches no Conv2D/Dense layer of ${network.model.name}`, {
      fix: `use 'all', or a pattern matching some of: ${body.map((l) => l.name).join(', ')}`,
    });
  }
  return chosen;
}

export class VidaAdapters {
  readonly kind = 'vida';
  /** Branch scales; ViDA's homeostatic allotment changes them per batch. */
  scales = { low: 1, high: 1 };
  private readonly adapted = new Map<string, Adapted>();
  private attachedTo?: Network;
  private readonly transform: KernelTransform = (layerName, kernel) => this.effectiveKernel(layerName, kernel);

  private constructor(readonly options: VidaAdapterOptions) {}

  /** Fresh adapters (up projections zero) for the selected layers of `network`. */
  static create(network: Network, options: Partial<VidaAdapterOptions>, rng: Rng): VidaAdapters {
    const o: VidaAdapterOptions = { ...VIDA_ADAPTER_DEFAULTS, ...options };
    const set = new VidaAdapters(o);
    for (const layer of selectAdapterLayers(network, o.layers)) {
      const config = layer.getConfig() as Record<string, unknown>;
      if ((config['activation'] ?? 'linear') !== 'linear') {
        throw new CttaError(`layer "${layer.name}" applies a ${String(config['activation'])} activation inside itself`, {
          fix: 'ViDA adds its branches to the linear output of a layer: select layers without built-in activation (the zoo models have none)',
        });
      }
      const kernel = layer.getWeights()[0]!;
      const isConv = layer.getClassName() === 'Conv2D';
      const inChannels = kernel.shape[kernel.rank - 2]!;
      const outChannels = kernel.shape[kernel.rank - 1]!;
      const highRank = Math.max(1, Math.round(o.highRankFactor * inChannels));
      const branch = (rank: number, part: string): Branch => {
        const downShape = isConv ? [kernel.shape[0]!, kernel.shape[1]!, inChannels, rank] : [inChannels, rank];
        const upShape = isConv ? [1, 1, rank, outChannels] : [rank, outChannels];
        const seed = rng.int(0, 2 ** 31 - 1);
        return {
          down: variableFrom(tf.randomNormal(downShape, 0, o.initStd === '1/r' ? 1 / rank : 1 / rank ** 2, 'float32', seed)),
          up: variableFrom(tf.zeros(upShape)),
          downName: `vida/${layer.name}/${part}_down`,
          upName: `vida/${layer.name}/${part}_up`,
        };
      };
      set.adapted.set(layer.name, { low: branch(o.lowRank, 'low'), high: branch(highRank, 'high') });
    }
    return set;
  }

  /** Adapters with the given weights (from a checkpoint, or another set's `namedVariables`). */
  static fromWeights(network: Network, options: VidaAdapterOptions, weights: Map<string, tf.Tensor>): VidaAdapters {
    const set = VidaAdapters.create(network, options, Rng.derive(0, 'vida-placeholder')); // values overwritten below
    for (const [name, v] of set.namedVariables()) {
      const w = weights.get(name);
      if (!w || w.shape.join() !== v.shape.join()) {
        set.dispose();
        throw new CttaError(`ViDA adapter weight ${name} is ${w ? `shaped [${w.shape}] instead of [${v.shape}]` : 'missing'}`, {
          fix: 'the adapters were trained for another model or adapter layout: re-run `ctta pretrain --adapters vida` for this model',
        });
      }
      v.assign(w);
    }
    return set;
  }

  /** Adds the branches to `network`'s forward pass (one network per adapter set). */
  attach(network: Network): this {
    if (this.attachedTo) throw new Error('these adapters are already attached to a network');
    network.kernelTransforms.push(this.transform);
    network.adapters = this;
    this.attachedTo = network;
    return this;
  }

  /** Every adapter weight by a stable name, `vida/<layer>/<low|high>_<down|up>`. */
  namedVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const a of this.adapted.values()) {
      for (const b of [a.low, a.high]) {
        out.set(b.downName, b.down);
        out.set(b.upName, b.up);
      }
    }
    return out;
  }

  variables(): tf.Variable[] {
    return [...this.namedVariables().values()];
  }

  layerNames(): string[] {
    return [...this.adapted.keys()];
  }

  bytes(): number {
    return this.variables().reduce((s, v) => s + v.size * 4, 0);
  }

  /** A copy with the same weights and scales, attached to `network` (e.g. a teacher clone). */
  copyTo(network: Network): VidaAdapters {
    const copy = VidaAdapters.fromWeights(network, this.options, this.namedVariables());
    copy.scales = { ...this.scales };
    return copy.attach(network);
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
    this.adapted.clear();
    if (this.attachedTo) {
      const transforms = this.attachedTo.kernelTransforms;
      const i = transforms.indexOf(this.transform);
      if (i >= 0) transforms.splice(i, 1);
      if (this.attachedTo.adapters === this) this.attachedTo.adapters = undefined;
      this.attachedTo = undefined;
    }
  }

  /**
   * The layer's kernel with both branches merged in. A branch is linear (down projection with
   * the layer's kernel size, stride, padding and dilation, then a 1x1 up projection, no bias and
   * no activation between), so up(down(x)) is a convolution of x with the kernel down·up
   * (contracted over the branch's middle width), and
   *   layer(x) + s_low·up_low(down_low(x)) + s_high·up_high(down_high(x))
   * is one convolution with W + s_low·D_low·U_low + s_high·D_high·U_high: the same function and
   * the same gradients for W, D and U (each enters linearly), at the cost of the plain layer plus
   * two small matrix products, instead of three convolutions of which the high-rank one is twice
   * the layer's width (tests/vida.test.ts compares both forms, values and gradients).
   */
  private effectiveKernel(layerName: string, kernel: tf.Tensor): tf.Tensor {
    const a = this.adapted.get(layerName);
    if (!a) return kernel;
    let k = kernel;
    for (const [branch, scale] of [[a.low, this.scales.low], [a.high, this.scales.high]] as const) {
      if (scale === 0) continue;
      const rank = branch.down.shape[branch.down.rank - 1]!;
      const merged = tf.matMul(branch.down.reshape([-1, rank]), branch.up.reshape([rank, -1])).reshape(kernel.shape);
      k = tf.add(k, tf.mul(merged, scale));
    }
    return k;
  }
}

/** A trainable variable initialised from `t`, which is then freed (tf.variable keeps it alive). */
function variableFrom(t: tf.Tensor): tf.Variable {
  const v = tf.variable(t);
  t.dispose();
  return v;
}
