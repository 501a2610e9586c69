/**
 * Appends zero channels: [x, 0, ..., 0] up to `channels`. With an average pooling before it,
 * this is the parameter-free shortcut ("option A" of He et al. 2016) of TTT's CIFAR ResNets,
 * which concatenate the pooled input with zero copies of itself when a stage widens.
 */
import * as tf from '@tensorflow/tfjs';

export interface ChannelZeroPadArgs {
  channels: number;
  name?: string;
}

export class ChannelZeroPad extends tf.layers.Layer {
  static readonly className = 'CttaChannelZeroPad';
  readonly channels: number;

  constructor(args: ChannelZeroPadArgs & tf.serialization.ConfigDict) {
    super(args as never);
    this.channels = args.channels;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = inputShape as tf.Shape;
    const inChannels = shape[shape.length - 1]!;
    if (inChannels > this.channels) throw new Error(`ChannelZeroPad ${this.name}: ${inChannels} input channels, more than the ${this.channels} it pads to`);
    return [...shape.slice(0, -1), this.channels];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    const extra = this.channels - x.shape[x.rank - 1]!;
    const paddings = x.shape.map((_, i) => (i === x.rank - 1 ? [0, extra] : [0, 0]) as [number, number]);
    return tf.pad(x, paddings);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), channels: this.channels };
  }
}

tf.serialization.registerClass(ChannelZeroPad as never);
