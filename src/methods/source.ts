/** Source: the frozen pretrained model, BatchNorm on its stored statistics. The baseline. */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Network } from '../models/network.js';
import { registerMethod } from './registry.js';
import type { AdaptationMethod, MethodContext } from './types.js';

export const sourceOptions = z.strictObject({});

export class SourceMethod implements AdaptationMethod {
  readonly name = 'source';
  readonly usesLabels = false;
  private network!: Network;

  constructor(readonly options: Record<string, unknown> = {}) {}

  async init(ctx: MethodContext): Promise<void> {
    this.network = ctx.network;
    this.network.setNormStatistics('running');
  }

  async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return tf.tidy(() => tf.softmax(this.network.logits(x)));
  }

  async adapt(): Promise<void> {}

  stateBytes(): number {
    return 0;
  }

  async reset(): Promise<void> {}

  dispose(): void {}
}

registerMethod({
  name: 'source',
  description: 'frozen source model, BatchNorm on stored statistics (no adaptation)',
  usesLabels: false,
  options: sourceOptions,
  create: (o) => new SourceMethod(o),
});
