/**
 * Per-channel input normalisation, (x - mean) / std, as the first layer of a network whose
 * PyTorch original expected normalised inputs (torchvision's ImageNet models, TTT's CIFAR
 * ResNet-26). ctta's streams give images in [0, 1]; keeping the normalisation inside the model
 * means a scenario needs no preprocessing option that could be forgotten or mismatched. The
 * constants are part of the layer's config (saved with the topology), not weights, so no
 * method can train them.
 */
import * as tf from '@tensorflow/tfjs';

export interface InputNormalizationArgs {
  mean: number[];
  std: number[];
  name?: string;
}

export class InputNormalization extends tf.layers.Layer {
  static readonly className = 'CttaInputNormalization';
  readonly mean: number[];
  readonly std: number[];

  constructor(args: InputNormalizationArgs & tf.serialization.ConfigDict) {
    super(args as never);
    if (args.mean.length !== args.std.length || args.std.some((s) => !(s > 0))) {
      throw new Error(`InputNormalization: mean and std need one value per channel and std > 0 (got mean ${JSON.stringify(args.mean)}, std ${JSON.stringify(args.std)})`);
    }
    this.mean = [...args.mean];
    this.std = [...args.std];
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = inputShape as tf.Shape;
    const channels = shape[shape.length - 1];
    if (channels !== this.mean.length) {
      throw new Error(`InputNormalization ${this.name}: ${this.mean.length} channel means for an input of ${channels} channels`);
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    // Subtract then divide, in PyTorch's Normalize order.
    return tf.tidy(() => x.sub(tf.tensor1d(this.mean)).div(tf.tensor1d(this.std)));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mean: this.mean, std: this.std };
  }
}

tf.serialization.registerClass(InputNormalization as never);
