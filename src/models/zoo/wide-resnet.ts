/**
 * WideResNet-28-10 (Zagoruyko & Komodakis 2016), the pre-activation network of the CTTA
 * benchmarks (RobustBench "Standard" CIFAR-10 model): stem conv 16, three stages of 4
 * BN-ReLU-conv blocks with widths 160, 320, 640, a final BN-ReLU, pooling and a linear head.
 * Defined here so converted weights load into it; too slow to train on a CPU.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type NormKind, type PaddingKind } from './builder.js';

export interface WideResNetOptions {
  depth: number;
  widen: number;
  inputShape: [number, number, number];
  numClasses: number;
  norm: NormKind;
  groups: number;
  seed: number;
  /** 'torch' for weights imported from PyTorch (builder.ts). */
  padding: PaddingKind;
  /** (x - mean) / std before the stem, for weights trained on normalised images. */
  inputNorm?: { mean: number[]; std: number[] };
}

export function buildWideResNet(o: WideResNetOptions): tf.LayersModel {
  if ((o.depth - 4) % 6 !== 0) throw new Error(`WideResNet depth must be 6n+4, got ${o.depth}`);
  const blocks = (o.depth - 4) / 6;
  const b = new GraphBuilder(o.seed, o.norm, o.groups, o.padding);
  const input = tf.input({ shape: o.inputShape, name: 'image' });
  let x = b.conv(b.inputNorm(input, o.inputNorm), 'stem_conv', 16, 3, 1);
  for (let stage = 0; stage < 3; stage++) {
    const filters = 16 * o.widen * 2 ** stage;
    for (let i = 0; i < blocks; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const p = `s${stage + 1}_b${i}`;
      const pre = b.relu(b.normalize(x, `${p}_norm1`), `${p}_relu1`);
      let y = b.conv(pre, `${p}_conv1`, filters, 3, stride);
      y = b.conv(b.relu(b.normalize(y, `${p}_norm2`), `${p}_relu2`), `${p}_conv2`, filters, 3, 1);
      // Shape-changing shortcuts project the pre-activated input, as in the reference code.
      const shortcut = x.shape[3] !== filters || stride !== 1 ? b.conv(pre, `${p}_proj`, filters, 1, stride) : x;
      x = b.add(y, shortcut, `${p}_add`);
    }
  }
  x = b.relu(b.normalize(x, 'final_norm'), 'final_relu');
  return tf.model({ inputs: input, outputs: b.classifier(x, o.numClasses), name: `wrn${o.depth}_${o.widen}` });
}
