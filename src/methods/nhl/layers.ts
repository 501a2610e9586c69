/**
 * Where NHL acts in a network: the Hebbian layer (the first Conv2D of the forward pass, "the
 * first convolution layer of the source model" in the paper) and the neuro-modulator (the
 * affine parameters of the first norm layer after it, our reading of the paper's modulator
 * layer that re-weights the Hebbian layer's responses; see ../nhl.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import type { LayerHook, Network } from '../../models/network.js';
import type { NormLayer } from '../../models/norm.js';
import type { ConvGeometry } from './soft-hebb.js';

export interface HebbianLayer {
  layer: tf.layers.Layer;
  /** The kernel variable, [kh, kw, Cin, Cout]. */
  kernel: tf.Variable;
  /** Its stable name in `network.namedWeights()` (e.g. `stem_conv/kernel`). */
  kernelName: string;
  geometry: ConvGeometry;
  /** The layer's input is the network's input (no layer before it): no pass needed to read it. */
  readsImage: boolean;
}

function pair(v: unknown): [number, number] {
  if (typeof v === 'number') return [v, v];
  const a = v as number[];
  return [a[0]!, a[1] ?? a[0]!];
}

/** The first Conv2D layer the forward pass runs, with its kernel and geometry. */
export function findHebbianLayer(network: Network): HebbianLayer {
  const layer = network.bodyLayers().find((l) => l.getClassName() === 'Conv2D');
  if (!layer) {
    throw new CttaError('NHL found no Conv2D layer to train with its Hebbian rule', {
      fix: 'use a convolutional model (the zoo ResNets and WideResNets have one)',
    });
  }
  const kernelWeight = layer.weights.find((w) => w.originalName.endsWith('/kernel'))!;
  const kernel = kernelWeight.read() as tf.Variable;
  const kernelName = [...network.namedWeights()].find(([, v]) => v === kernel)![0];
  const config = layer.getConfig() as Record<string, unknown>;
  const inbound = layer.inboundNodes[0]!.inboundLayers;
  return {
    layer,
    kernel,
    kernelName,
    geometry: { strides: pair(config['strides']), dilations: pair(config['dilationRate']), padding: config['padding'] as 'same' | 'valid' },
    readsImage: inbound.length === 1 && inbound[0]!.getClassName() === 'InputLayer',
  };
}

/** The first norm layer with affine parameters after `after` in the forward pass. */
export function findModulator(network: Network, after: tf.layers.Layer): NormLayer {
  const layers = network.bodyLayers();
  const byName = new Map(network.norms.map((n) => [n.name, n] as const));
  for (const l of layers.slice(layers.indexOf(after) + 1)) {
    const norm = byName.get(l.name);
    if (norm && norm.affineVariables().length > 0) return norm;
  }
  throw new CttaError(`NHL found no norm layer with gamma/beta after "${after.name}" to use as its neuro-modulator`, {
    fix: 'use a model with BatchNorm or GroupNorm layers (every zoo model has them)',
  });
}

/**
 * The input of the Hebbian layer for batch `x` (the caller disposes it). NHL changes nothing
 * before this layer, so the input depends on `x` only. For the zoo models it is `x` itself;
 * otherwise one pass up to the layer reads it through a hook (statistics frozen: reading
 * changes nothing).
 */
export function hebbianInput(network: Network, hebbian: HebbianLayer, x: tf.Tensor4D): tf.Tensor4D {
  if (hebbian.readsImage) return x.clone();
  let captured: tf.Tensor4D | undefined;
  const hook: LayerHook = (call) => {
    if (call.layer === hebbian.layer && !captured) captured = tf.keep(call.input.clone()) as tf.Tensor4D;
    return call.output;
  };
  network.hooks.push(hook);
  try {
    network.withFrozenStatistics(() => network.features(x).dispose());
  } finally {
    network.hooks.splice(network.hooks.indexOf(hook), 1);
  }
  return captured!;
}
