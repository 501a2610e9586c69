/**
 * CIFAR-style ResNets (He et al. 2016, section 4.2): a 3x3 stem, three stages of n basic blocks
 * with widths w, 2w, 4w (stride 2 at the start of stages 2 and 3), global pooling, a linear head.
 * depth = 6n + 2: ResNet-8 (n=1), ResNet-20 (n=3), ResNet-26 (n=4).
 * Shortcuts that change shape are 1x1 conv + norm ("option B"), as most PyTorch CTTA code does.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type NormKind } from './builder.js';

export interface ResNetOptions {
  depth: number;
  inputShape: [number, number, number];
  numClasses: number;
  /** Channels of the first stage (16 in the paper). */
  width: number;
  norm: NormKind;
  /** GroupNorm groups (ignored for BatchNorm). */
  groups: number;
  seed: number;
}

export function buildResNet(o: ResNetOptions): tf.LayersModel {
  if ((o.depth - 2) % 6 !== 0) throw new Error(`ResNet depth must be 6n+2, got ${o.depth}`);
  const blocks = (o.depth - 2) / 6;
  const b = new GraphBuilder(o.seed, o.norm, o.groups);
  const input = tf.input({ shape: o.inputShape, name: 'image' });
  let x = b.relu(b.normalize(b.conv(input, 'stem_conv', o.width, 3, 1), 'stem_norm'), 'stem_relu');
  for (let stage = 0; stage < 3; stage++) {
    const filters = o.width * 2 ** stage;
    for (let i = 0; i < blocks; i++) {
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
  return tf.model({ inputs: input, outputs: b.classifier(x, o.numClasses), name: `resnet${o.depth}` });
}
