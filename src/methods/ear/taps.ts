/**
 * What EAR reads from its frozen encoder: the layers it taps (several depths, as HDFF fuses) and
 * one forward pass that returns their globally average-pooled outputs together with the
 * penultimate features and the base model's logits. BatchNorm runs on its stored statistics,
 * read-only: the encoder never changes.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import type { LayerHook, Network } from '../../models/network.js';

const ACTIVATIONS = new Set(['Activation', 'ReLU']);

export interface EncoderPass {
  /** Per tapped layer, its output averaged over height and width: [N, channels]. */
  pooled: tf.Tensor2D[];
  /** The head's input [N, F]. */
  features: tf.Tensor2D;
  /** The base model's logits [N, K]. */
  logits: tf.Tensor2D;
}

function rank(layer: tf.layers.Layer): number {
  const shape = layer.outputShape;
  return Array.isArray(shape) && !Array.isArray(shape[0]) ? shape.length : 0;
}

function followsAdd(layer: tf.layers.Layer): boolean {
  return layer.inboundNodes[0]?.inboundLayers[0]?.getClassName() === 'Add';
}

/**
 * The tapped layers, in forward order. 'blocks': the first spatial activation (the stem) and the
 * activation after every residual addition (each block's output; HDFF hooks the blocks of its
 * WideResNets). Otherwise a regular expression on layer names (spatial or flat outputs).
 */
export function selectTapLayers(network: Network, selector: string): tf.layers.Layer[] {
  const body = network.bodyLayers();
  let chosen: tf.layers.Layer[];
  if (selector === 'blocks') {
    const acts = body.filter((l) => ACTIVATIONS.has(l.getClassName()) && rank(l) === 4);
    chosen = acts.filter((l, i) => i === 0 || followsAdd(l));
  } else {
    let re: RegExp;
    try {
      re = new RegExp(selector);
    } catch (err) {
      throw new CttaError(`EAR layer pattern "${selector}" is not a regular expression (${(err as Error).message})`, { fix: "use 'blocks' or a pattern such as '_relu2$'" });
    }
    chosen = body.filter((l) => re.test(l.name) && (rank(l) === 4 || rank(l) === 2));
  }
  if (chosen.length === 0) {
    throw new CttaError(`EAR's layer selection "${selector}" matches no layer of ${network.model.name} with a [N, H, W, C] or [N, C] output`, {
      fix: `use a pattern matching some of: ${body.map((l) => l.name).join(', ')}`,
    });
  }
  return chosen;
}

/** Channels of each tapped layer's pooled output. */
export function tapChannels(layers: readonly tf.layers.Layer[]): number[] {
  return layers.map((l) => {
    const shape = l.outputShape as (number | null)[];
    return shape[shape.length - 1]!;
  });
}

/** One pass of the frozen encoder over `x`; the caller disposes every tensor of the result (`disposePass`). */
export function encoderPass(network: Network, layers: readonly tf.layers.Layer[], x: tf.Tensor4D): EncoderPass {
  const index = new Map(layers.map((l, i) => [l, i] as const));
  const pooled: (tf.Tensor2D | undefined)[] = layers.map(() => undefined);
  const hook: LayerHook = (call) => {
    const i = index.get(call.layer);
    if (i !== undefined && !pooled[i]) {
      // Kept: the forward pass's tidy would free it otherwise.
      pooled[i] = tf.keep(call.output.rank === 4 ? tf.mean(call.output, [1, 2]) : call.output.clone()) as tf.Tensor2D;
    }
    return call.output;
  };
  network.hooks.push(hook);
  try {
    const { features, logits } = network.withFrozenStatistics(() => network.forward(x));
    return { pooled: pooled as tf.Tensor2D[], features, logits };
  } catch (err) {
    tf.dispose(pooled.filter((p): p is tf.Tensor2D => p !== undefined));
    throw err;
  } finally {
    network.hooks.splice(network.hooks.indexOf(hook), 1);
  }
}

export function disposePass(pass: EncoderPass): void {
  tf.dispose([...pass.pooled, pass.features, pass.logits]);
}
