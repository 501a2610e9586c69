/**
 * ResNets of basic blocks for small images, with a 3x3 stride-1 stem and no max-pool:
 * - CIFAR-style (He et al. 2016, section 4.2): three stages of n blocks with widths w, 2w, 4w;
 *   depth = 6n + 2: ResNet-8 (n=1), ResNet-20 (n=3), ResNet-26 (n=4).
 * - ResNet-18 as the online continual-learning code uses it (Mai et al.'s framework, OnPro, OCM,
 *   Mammoth; kuangliu's CIFAR ResNet-18): four stages of 2 blocks with widths w, 2w, 4w, 8w;
 *   w = 64 (11.17M parameters for 10 classes) or the "reduced" w = 20 (1.09M for 100 classes).
 * Stages after the first start with stride 2; global average pooling, a linear head. Shortcuts
 * that change shape are 1x1 conv + norm ("option B"), as the PyTorch code does.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type NormKind } from './builder.js';

export interface ResNetOptions {
  /** Blocks per stage, e.g. [1, 1, 1] for ResNet-8, [2, 2, 2, 2] for ResNet-18. */
  blocks: number[];
  /** The model's name in the graph (`resnet8`). */
  name: string;
  inputShape: [number, number, number];
  numClasses: number;
  /** Channels of the first stage (16 in the paper). */
  width: number;
  norm: NormKind;
  /** GroupNorm groups (ignored for BatchNorm). */
  groups: number;
  seed: number;
}

/** Blocks per stage of a CIFAR-style ResNet of depth 6n + 2. */
export function cifarResNetBlocks(depth: number): number[] {
  if ((depth - 2) % 6 !== 0) throw new Error(`ResNet depth must be 6n+2, got ${depth}`);
  return [1, 1, 1].map(() => (depth - 2) / 6);
}

export function buildResNet(o: ResNetOptions): tf.LayersModel {
  const b = new GraphBuilder(o.seed, o.norm, o.groups);
  const input = tf.input({ shape: o.inputShape, name: 'image' });
  let x = b.relu(b.normalize(b.conv(input, 'stem_conv', o.width, 3, 1), 'stem_norm'), 'stem_relu');
  for (let stage = 0; stage < o.blocks.length; stage++) {
    const filters = o.width * 2 ** stage;
    for (let i = 0; i < o.blocks[stage]!; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const p = `s${stage + 1}_b${i}`;
      let y = b.relu(b.normalize(b.conv(x, `${p}_conv1`, filters, 3, stride), `${p}_norm1`), `${p}_relu1`);
      y = b.normalize(b.conv(y, `${p}_conv2`, filters, 3, 1), `${p}_norm2`);
      const inChannels = x.shape[3];
      const shortcut =
        stride !== 1 || inChannels !== filters
          ? b.normalize(b.conv(x, `${p}_proj`, filters, 1, stride), `${p}_proj_norm`)
          : x;
      x = b.relu(b.add(y, shortcut, `${p}_add`), `${p}_relu2`);
    }
  }
  return tf.model({ inputs: input, outputs: b.classifier(x, o.numClasses), name: o.name });
}
