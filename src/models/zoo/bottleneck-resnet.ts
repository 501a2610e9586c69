/**
 * torchvision's ResNet of bottleneck blocks (He et al. 2016; ResNet-50 = [3, 4, 6, 3] blocks),
 * the ImageNet-C model of the CTTA papers: a 7x7 stride-2 stem with a 3x3 stride-2 max-pool,
 * four stages of 1x1 -> 3x3 -> 1x1 blocks (widths w, 2w, 4w, 8w, expanded 4x; w = 64), stride
 * on the 3x3 conv ("v1.5", as torchvision), 1x1 conv + norm projections where the shape changes,
 * global average pooling and a linear head. Defined so converted torchvision weights load into
 * it (`ctta import-torch --arch resnet50`); `width` below 64 gives small test networks.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type ZooBuildOptions } from './builder.js';

export interface BottleneckResNetOptions extends ZooBuildOptions {
  blocks: number[];
  /** Channels of the first stage (64 in torchvision). */
  width: number;
  name: string;
}

const EXPANSION = 4;

export function buildBottleneckResNet(o: BottleneckResNetOptions): tf.LayersModel {
  const b = new GraphBuilder(o.seed, o.norm, o.groups, o.padding);
  const input = tf.input({ shape: o.inputShape, name: 'image' });
  let x = b.relu(b.normalize(b.conv(b.inputNorm(input, o.inputNorm), 'stem_conv', o.width, 7, 2), 'stem_norm'), 'stem_relu');
  x = b.maxPool(x, 'stem_pool', 3, 2);
  for (let stage = 0; stage < o.blocks.length; stage++) {
    const planes = o.width * 2 ** stage;
    for (let i = 0; i < o.blocks[stage]!; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const p = `s${stage + 1}_b${i}`;
      let y = b.relu(b.normalize(b.conv(x, `${p}_conv1`, planes, 1, 1), `${p}_norm1`), `${p}_relu1`);
      y = b.relu(b.normalize(b.conv(y, `${p}_conv2`, planes, 3, stride), `${p}_norm2`), `${p}_relu2`);
      y = b.normalize(b.conv(y, `${p}_conv3`, planes * EXPANSION, 1, 1), `${p}_norm3`);
      const shortcut =
        stride !== 1 || x.shape[3] !== planes * EXPANSION
          ? b.normalize(b.conv(x, `${p}_proj`, planes * EXPANSION, 1, stride), `${p}_proj_norm`)
          : x;
      x = b.relu(b.add(y, shortcut, `${p}_add`), `${p}_relu3`);
    }
  }
  return tf.model({ inputs: input, outputs: b.classifier(x, o.numClasses), name: o.name });
}
