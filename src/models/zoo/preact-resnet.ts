/**
 * The CIFAR ResNet of TTT (Sun et al. 2020, `ResNetCifar` in their code), which TENT and LAME
 * also evaluate as "ResNet-26": pre-activation basic blocks (norm-ReLU-conv twice) in three
 * stages of widths 16w, 32w, 64w after a 16-channel 3x3 stem, a final norm-ReLU, global average
 * pooling and a linear head. Unlike the WideResNet, a block that changes shape has no
 * projection: its shortcut average-pools the raw input over stride x stride windows and appends
 * zero channels (no parameters). BatchNorm, or GroupNorm as in TTT's main results (8 groups).
 * Defined here so converted weights load into it (`ctta import-torch --arch resnet26`).
 */
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type NormKind, type PaddingKind } from './builder.js';

export interface PreActResNetOptions {
  depth: number;
  width: number;
  inputShape: [number, number, number];
  numClasses: number;
  norm: NormKind;
  groups: number;
  seed: number;
  padding: PaddingKind;
  inputNorm?: { mean: number[]; std: number[] };
}

export function buildPreActResNet(o: PreActResNetOptions): tf.LayersModel {
  if ((o.depth - 2) % 6 !== 0) throw new Error(`TTT's ResNet depth must be 6n+2, got ${o.depth}`);
  const blocks = (o.depth - 2) / 6;
  const b = new GraphBuilder(o.seed, o.norm, o.groups, o.padding);
  const input = tf.input({ shape: o.inputShape, name: 'image' });
  let x = b.conv(b.inputNorm(input, o.inputNorm), 'stem_conv', 16, 3, 1);
  for (let stage = 0; stage < 3; stage++) {
    const filters = 16 * o.width * 2 ** stage;
    for (let i = 0; i < blocks; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const p = `s${stage + 1}_b${i}`;
      let y = b.conv(b.relu(b.normalize(x, `${p}_norm1`), `${p}_relu1`), `${p}_conv1`, filters, 3, stride);
      y = b.conv(b.relu(b.normalize(y, `${p}_norm2`), `${p}_relu2`), `${p}_conv2`, filters, 3, 1);
      const shortcut = stride !== 1 || x.shape[3] !== filters ? b.poolAndPad(x, `${p}_short`, filters, stride) : x;
      x = b.add(y, shortcut, `${p}_add`);
    }
  }
  x = b.relu(b.normalize(x, 'final_norm'), 'final_relu');
  return tf.model({ inputs: input, outputs: b.classifier(x, o.numClasses), name: `ttt_resnet${o.depth}` });
}
