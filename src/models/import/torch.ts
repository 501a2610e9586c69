/**
 * PyTorch state_dicts (as safetensors) into ctta's zoo networks: per architecture, which tensor
 * of the state_dict fills which weight of which layer. Conv kernels go from PyTorch's
 * [out, in, kh, kw] to tfjs's [kh, kw, in, out], linear weights are transposed, and BatchNorm
 * keeps its running statistics (weight -> gamma, bias -> beta, running_mean, running_var). The
 * network is built with PyTorch's padding (builder.ts, 'torch'), so it computes what the PyTorch
 * module computed. Every tensor must be used and every weight filled: a state_dict of another
 * architecture is an error naming what does not match, never a half-loaded model.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import type { Network } from '../network.js';
import { createModel } from '../registry.js';
import type { SafeTensor } from './safetensors.js';

/** One weight: our layer, its weight (kernel, gamma, ...), the state_dict name, and how to lay it out. */
interface Assignment {
  layer: string;
  weight: string;
  tensor: string;
  layout: 'conv' | 'linear' | 'vector';
}

export interface TorchArchitecture {
  name: string;
  description: string;
  /** The zoo architecture and its options, read from the tensors' shapes. */
  zoo(tensors: Map<string, SafeTensor>, inputShape: [number, number, number]): { architecture: string; options: Record<string, unknown> };
  assignments(tensors: Map<string, SafeTensor>): Assignment[];
}

const bn = (layer: string, prefix: string): Assignment[] => [
  { layer, weight: 'gamma', tensor: `${prefix}.weight`, layout: 'vector' },
  { layer, weight: 'beta', tensor: `${prefix}.bias`, layout: 'vector' },
  { layer, weight: 'moving_mean', tensor: `${prefix}.running_mean`, layout: 'vector' },
  { layer, weight: 'moving_variance', tensor: `${prefix}.running_var`, layout: 'vector' },
];

function need(tensors: Map<string, SafeTensor>, name: string, arch: string): SafeTensor {
  const t = tensors.get(name);
  if (!t) throw new CttaError(`the state_dict has no ${name}: it is not a ${arch} (its first tensors: ${[...tensors.keys()].slice(0, 4).join(', ')})`, { fix: 'choose the --arch the checkpoint was saved from (ctta import-torch --help)' });
  return t;
}

/**
 * RobustBench's WideResNet (Standard, and the CIFAR-10/100-C models of the CTTA papers): module
 * names conv1, block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}, bn1, fc.
 */
function wideResNet(name: string, depth?: number): TorchArchitecture {
  const blocksPerStage = (tensors: Map<string, SafeTensor>) => {
    let n = 0;
    while (tensors.has(`block1.layer.${n}.conv1.weight`)) n++;
    return n;
  };
  return {
    name,
    description: depth ? `WideResNet-${depth}-<widen> (RobustBench Standard for CIFAR-10-C: widen 10)` : 'WideResNet of any depth 6n+4 and widen, RobustBench naming',
    zoo(tensors, inputShape) {
      const n = blocksPerStage(tensors);
      const found = 6 * n + 4;
      if (depth !== undefined && found !== depth) {
        throw new CttaError(`the state_dict is a WideResNet-${found}, not ${name}`, { fix: `use --arch wrn (any depth) or the checkpoint of a WideResNet-${depth}` });
      }
      const first = need(tensors, 'block1.layer.0.conv1.weight', name);
      const head = need(tensors, 'fc.weight', name);
      const stem = need(tensors, 'conv1.weight', name);
      if (stem.shape[1] !== inputShape[2]) {
        throw new CttaError(`the network takes ${stem.shape[1]} input channels, but --input says ${inputShape[2]}`, { fix: `--input ${inputShape[0]}x${inputShape[1]}x${stem.shape[1]}` });
      }
      return {
        architecture: depth ? name : 'wrn',
        options: { inputShape, numClasses: head.shape[0], widen: first.shape[0]! / 16, ...(depth ? {} : { depth: found }), padding: 'torch' },
      };
    },
    assignments(tensors) {
      const n = blocksPerStage(tensors);
      const out: Assignment[] = [{ layer: 'stem_conv', weight: 'kernel', tensor: 'conv1.weight', layout: 'conv' }];
      for (let stage = 1; stage <= 3; stage++) {
        for (let i = 0; i < n; i++) {
          const ours = `s${stage}_b${i}`;
          const theirs = `block${stage}.layer.${i}`;
          out.push(...bn(`${ours}_norm1`, `${theirs}.bn1`));
          out.push({ layer: `${ours}_conv1`, weight: 'kernel', tensor: `${theirs}.conv1.weight`, layout: 'conv' });
          out.push(...bn(`${ours}_norm2`, `${theirs}.bn2`));
          out.push({ layer: `${ours}_conv2`, weight: 'kernel', tensor: `${theirs}.conv2.weight`, layout: 'conv' });
          if (tensors.has(`${theirs}.convShortcut.weight`)) out.push({ layer: `${ours}_proj`, weight: 'kernel', tensor: `${theirs}.convShortcut.weight`, layout: 'conv' });
        }
      }
      out.push(...bn('final_norm', 'bn1'));
      out.push({ layer: 'head', weight: 'kernel', tensor: 'fc.weight', layout: 'linear' }, { layer: 'head', weight: 'bias', tensor: 'fc.bias', layout: 'vector' });
      return out;
    },
  };
}

export const TORCH_ARCHITECTURES: readonly TorchArchitecture[] = [wideResNet('wrn28_10', 28), wideResNet('wrn')];

export function torchArchitecture(name: string): TorchArchitecture {
  const arch = TORCH_ARCHITECTURES.find((a) => a.name === name);
  if (!arch) throw new CttaError(`no PyTorch mapping for architecture "${name}"`, { fix: `use one of: ${TORCH_ARCHITECTURES.map((a) => a.name).join(', ')}` });
  return arch;
}

/** The tensor in tfjs's layout: conv [out,in,kh,kw] -> [kh,kw,in,out], linear [out,in] -> [in,out]. */
function laidOut(t: SafeTensor, layout: Assignment['layout']): tf.Tensor {
  return tf.tidy(() => {
    const x = tf.tensor(t.values, t.shape);
    if (layout === 'conv') return tf.transpose(x, [2, 3, 1, 0]);
    if (layout === 'linear') return tf.transpose(x, [1, 0]);
    return x;
  });
}

/**
 * Names as the module defines them: without DataParallel's `module.` prefix, and without the
 * `sub_block1` of the TRADES-derived WideResNet code, which its forward never uses.
 */
function normalizeNames(tensors: Map<string, SafeTensor>): Map<string, SafeTensor> {
  const out = new Map<string, SafeTensor>();
  for (const [name, t] of tensors) {
    const plain = name.startsWith('module.') ? name.slice('module.'.length) : name;
    if (!plain.startsWith('sub_block1.')) out.set(plain, t);
  }
  return out;
}

/** Builds the zoo network of `arch` and fills it from the state_dict's tensors. */
export function importStateDict(raw: Map<string, SafeTensor>, archName: string, inputShape: [number, number, number]): Network {
  const tensors = normalizeNames(raw);
  const arch = torchArchitecture(archName);
  const { architecture, options } = arch.zoo(tensors, inputShape);
  const assignments = arch.assignments(tensors);
  const network = createModel(architecture, options);
  try {
    const used = new Set<string>();
    const filled = new Set<string>();
    for (const a of assignments) {
      const t = need(tensors, a.tensor, arch.name);
      const layer = network.model.getLayer(a.layer);
      const variable = layer.weights.find((w) => w.originalName.split('/').pop() === a.weight);
      if (!variable) throw new Error(`ctta's ${architecture} has no weight ${a.layer}/${a.weight}`);
      const value = laidOut(t, a.layout);
      try {
        if (!tf.util.arraysEqual(value.shape, variable.shape as number[])) {
          throw new CttaError(`${a.tensor} has shape [${t.shape}], which does not fit ${a.layer}/${a.weight} [${variable.shape}] of ${architecture}`, { fix: 'check --arch and --input' });
        }
        variable.write(value);
      } finally {
        value.dispose();
      }
      used.add(a.tensor);
      filled.add(variable.name);
    }
    const unused = [...tensors.keys()].filter((k) => !used.has(k));
    if (unused.length > 0) {
      throw new CttaError(`${unused.length} tensor(s) of the state_dict have no place in ${architecture}, e.g. ${unused.slice(0, 3).join(', ')}`, { fix: 'the checkpoint is another architecture: choose its --arch' });
    }
    const empty = network.model.weights.filter((w) => !filled.has(w.name));
    if (empty.length > 0) throw new Error(`weights of ${architecture} not filled: ${empty.map((w) => w.name).join(', ')}`);
    return network;
  } catch (err) {
    network.dispose();
    throw err;
  }
}
