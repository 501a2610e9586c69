/**
 * Small helpers for building zoo models with the tfjs-layers functional API: explicit layer
 * names (checkpoint weights are matched by name) and seeded initialisers (same seed, same
 * initial weights, so pretraining is reproducible).
 */
import * as tf from '@tensorflow/tfjs';
import { ChannelZeroPad } from '../layers/channel-zero-pad.js';
import { GroupNormalization } from '../layers/group-norm.js';
import { InputNormalization } from '../layers/input-normalization.js';

export type NormKind = 'batch' | 'group';

/**
 * How a convolution pads: 'same' is TensorFlow's (a stride-2 3x3 conv on an even size pads one
 * row/column at the bottom/right only); 'torch' is PyTorch's `padding=k//2` (one on each side),
 * which weights imported from PyTorch need to give PyTorch's outputs. They differ only where the
 * stride is above 1 and the kernel above 1.
 */
export type PaddingKind = 'same' | 'torch';

/** The options every zoo builder of imported architectures takes (registry.ts validates them). */
export interface ZooBuildOptions {
  inputShape: [number, number, number];
  numClasses: number;
  norm: NormKind;
  /** GroupNorm groups (ignored for BatchNorm). */
  groups: number;
  seed: number;
  /** 'torch' for weights imported from PyTorch. */
  padding: PaddingKind;
  /** (x - mean) / std per channel before the stem, for weights trained on normalised images. */
  inputNorm?: { mean: number[]; std: number[] };
}

export class GraphBuilder {
  private seedCounter: number;

  constructor(
    seed: number,
    private readonly norm: NormKind,
    private readonly groups: number,
    private readonly padding: PaddingKind = 'same',
  ) {
    // + 1: tfjs initialisers treat seed 0 as "no seed" (Math.random), which left the first
    // layer of every seed-0 model unseeded.
    this.seedCounter = seed * 1000 + 1;
  }

  private nextSeed(): number {
    return this.seedCounter++;
  }

  /** He-normal (fan-out) conv init, as torchvision/CIFAR ResNets use. */
  conv(x: tf.SymbolicTensor, name: string, filters: number, kernel: number, stride: number): tf.SymbolicTensor {
    let padding: 'same' | 'valid' = 'same';
    // Stride 1 'same' already pads k//2 on each side (odd kernels), as PyTorch does.
    if (this.padding === 'torch' && stride > 1 && kernel > 1) {
      const p = Math.floor(kernel / 2);
      x = tf.layers.zeroPadding2d({ name: `${name}_pad`, padding: [[p, p], [p, p]] }).apply(x) as tf.SymbolicTensor;
      padding = 'valid';
    }
    return tf.layers
      .conv2d({
        name,
        filters,
        kernelSize: kernel,
        strides: stride,
        padding,
        useBias: false,
        kernelInitializer: tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'normal', seed: this.nextSeed() }),
      })
      .apply(x) as tf.SymbolicTensor;
  }

  normalize(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    if (this.norm === 'group') {
      const channels = x.shape[x.shape.length - 1]!;
      const groups = Math.min(this.groups, channels);
      return new GroupNormalization({ name, groups, epsilon: 1e-5 }).apply(x) as tf.SymbolicTensor;
    }
    // PyTorch's defaults (eps 1e-5); momentum is handled by NormLayer, not by this layer.
    return tf.layers.batchNormalization({ name, axis: -1, epsilon: 1e-5, momentum: 0.9 }).apply(x) as tf.SymbolicTensor;
  }

  /** (x - mean) / std per channel, when the weights expect normalised images; x itself otherwise. */
  inputNorm(x: tf.SymbolicTensor, norm: { mean: number[]; std: number[] } | undefined): tf.SymbolicTensor {
    return norm ? (new InputNormalization({ name: 'input_norm', ...norm }).apply(x) as tf.SymbolicTensor) : x;
  }

  /**
   * Max pooling with padding `kernel // 2`. 'torch' pads zeros on each side, which equals
   * PyTorch's -inf padding only for inputs >= 0: use it after a ReLU (as torchvision does).
   */
  maxPool(x: tf.SymbolicTensor, name: string, kernel: number, stride: number): tf.SymbolicTensor {
    let padding: 'same' | 'valid' = 'same';
    if (this.padding === 'torch') {
      const p = Math.floor(kernel / 2);
      x = tf.layers.zeroPadding2d({ name: `${name}_pad`, padding: [[p, p], [p, p]] }).apply(x) as tf.SymbolicTensor;
      padding = 'valid';
    }
    return tf.layers.maxPooling2d({ name, poolSize: kernel, strides: stride, padding }).apply(x) as tf.SymbolicTensor;
  }

  /**
   * The parameter-free shortcut of TTT's ResNets: average pooling over stride x stride windows,
   * then zero channels up to `filters`.
   */
  poolAndPad(x: tf.SymbolicTensor, name: string, filters: number, stride: number): tf.SymbolicTensor {
    if (stride > 1) x = tf.layers.averagePooling2d({ name: `${name}_pool`, poolSize: stride, strides: stride, padding: 'valid' }).apply(x) as tf.SymbolicTensor;
    return x.shape[3] === filters ? x : (new ChannelZeroPad({ name: `${name}_pad`, channels: filters }).apply(x) as tf.SymbolicTensor);
  }

  relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.activation({ name, activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  }

  add(a: tf.SymbolicTensor, b: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.add({ name }).apply([a, b]) as tf.SymbolicTensor;
  }

  /** Global average pooling then the linear classifier `head`. */
  classifier(x: tf.SymbolicTensor, numClasses: number): tf.SymbolicTensor {
    const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
    return tf.layers
      .dense({
        name: 'head',
        units: numClasses,
        kernelInitializer: tf.initializers.glorotUniform({ seed: this.nextSeed() }),
      })
      .apply(pooled) as tf.SymbolicTensor;
  }
}
