/**
 * GroupNorm as a tfjs-layers Layer, so that GroupNorm models save and load in the standard tfjs
 * LayersModel format (tfjs has no built-in GroupNormalization). The layer's own `call` is only a
 * fallback: `Network` executes norm layers itself (see ../norm.ts) so that methods can control
 * them.
 */
import * as tf from '@tensorflow/tfjs';

export interface GroupNormArgs {
  groups: number;
  epsilon?: number;
  name?: string;
}

export class GroupNormalization extends tf.layers.Layer {
  static readonly className = 'CttaGroupNormalization';
  readonly groups: number;
  readonly epsilon: number;
  gamma!: tf.LayerVariable;
  beta!: tf.LayerVariable;

  constructor(args: GroupNormArgs & tf.serialization.ConfigDict) {
    super(args as never);
    this.groups = args.groups;
    this.epsilon = args.epsilon ?? 1e-5;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = inputShape as tf.Shape;
    const channels = shape[shape.length - 1]!;
    if (channels % this.groups !== 0) {
      throw new Error(`GroupNormalization ${this.name}: ${channels} channels are not divisible by ${this.groups} groups`);
    }
    this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    return groupNorm(x, this.gamma.read() as tf.Tensor1D, this.beta.read() as tf.Tensor1D, this.groups, this.epsilon);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), groups: this.groups, epsilon: this.epsilon };
  }
}

/** Normalises each sample over (H, W, channels of its group), then applies gamma/beta. */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, groups: number, epsilon: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const g = x.reshape([n, h, w, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 2, 4], true);
    const normed = g.sub(mean).mul(tf.rsqrt(variance.add(epsilon))).reshape([n, h, w, c]);
    return normed.mul(gamma).add(beta) as tf.Tensor4D;
  });
}

tf.serialization.registerClass(GroupNormalization as never);
