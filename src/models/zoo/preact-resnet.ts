/**
 * Pre-activation ResNets for 32x32 images (He et al. 2016, "Identity mappings"): a 16-channel
 * 3x3 stem, three stages of norm-ReLU-conv blocks (twice per block) with widths 16w, 32w, 64w,
 * a final norm-ReLU, global average pooling and a linear head. Two networks of the CTTA papers
 * are this shape and differ only in the shortcut of a block that changes shape:
 * - 'project' (WideResNet, Zagoruyko & Komodakis 2016; RobustBench's CIFAR models): a 1x1 conv
 *   of the pre-activated input;
 * - 'pool-pad' (TTT's `ResNetCifar`, Sun et al. 2020, also TENT's and LAME's ResNet-26): the raw
 *   input average-pooled over stride x stride windows with zero channels appended (no weights).
 * Defined here so converted weights load into them (`ctta import-torch`); WideResNet-28-10 is
 * too slow to train on a CPU.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type ZooBuildOptions } from './builder.js';

export interface PreActResNetOptions extends ZooBuildOptions {
  /** Blocks per stage. */
  blocks: number;
  /** The stage widths are 16, 32 and 64 times this (WideResNet's "widen"). */
  widen: number;
  shortcut: 'project' | 'pool-pad';
  /** The model's name in the graph. */
  name: string;
}

export function buildPreActResNet(o: PreActResNetOptions): tf.LayersModel {
  const b = new GraphBuilder(o.seed, o.norm, o.groups, o.padding);
  const input = tf.input({ shape: o.inputShape, name: 'image' });
  let x = b.conv(b.inputNorm(input, o.inputNorm), 'stem_conv', 16, 3, 1);
  for (let stage = 0; stage < 3; stage++) {
    const filters = 16 * o.widen * 2 ** stage;
    for (let i = 0; i < o.blocks; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      const p = `s${stage + 1}_b${i}`;
      const pre = b.relu(b.normalize(x, `${p}_norm1`), `${p}_relu1`);
      let y = b.conv(pre, `${p}_conv1`, filters, 3, stride);
      y = b.conv(b.relu(b.normalize(y, `${p}_norm2`), `${p}_relu2`), `${p}_conv2`, filters, 3, 1);
      let shortcut = x;
      if (stride !== 1 || x.shape[3] !== filters) {
        shortcut = o.shortcut === 'project' ? b.conv(pre, `${p}_proj`, filters, 1, stride) : b.poolAndPad(x, `${p}_short`, filters, stride);
      }
      x = b.add(y, shortcut, `${p}_add`);
    }
  }
  x = b.relu(b.normalize(x, 'final_norm'), 'final_relu');
  return tf.model({ inputs: input, outputs: b.classifier(x, o.numClasses), name: o.name });
}

/** WideResNet-<depth>-<widen>: depth 6n+4 (28-10 is the CIFAR benchmarks' model). */
export interface WideResNetOptions extends ZooBuildOptions {
  depth: number;
  widen: number;
}

export function buildWideResNet(o: WideResNetOptions): tf.LayersModel {
  if ((o.depth - 4) % 6 !== 0) throw new Error(`WideResNet depth must be 6n+4, got ${o.depth}`);
  return buildPreActResNet({ ...o, blocks: (o.depth - 4) / 6, shortcut: 'project', name: `wrn${o.depth}_${o.widen}` });
}

/** TTT's CIFAR ResNet of depth 6n+2 and width w (`ResNetCifar`). */
export function buildTttResNet(o: ZooBuildOptions & { depth: number; width: number }): tf.LayersModel {
  if ((o.depth - 2) % 6 !== 0) throw new Error(`TTT's ResNet depth must be 6n+2, got ${o.depth}`);
  return buildPreActResNet({ ...o, blocks: (o.depth - 2) / 6, widen: o.width, shortcut: 'pool-pad', name: `ttt_resnet${o.depth}` });
}
