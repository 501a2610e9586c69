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

/** Per-channel (x - mean) / std the original network expects its [0, 1] images to get first. */
export interface InputNorm {
  mean: number[];
  std: number[];
}

/** Input normalisations the CTTA papers' checkpoints were trained with, by name. */
export const INPUT_NORMS: Record<string, InputNorm | undefined> = {
  none: undefined,
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  // TTT's utils/prepare_dataset.py: Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).
  ttt: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
};

export interface TorchArchitecture {
  name: string;
  description: string;
  /** The image size the checkpoints of this architecture are usually evaluated at. */
  defaultInput: [number, number, number];
  /** The name in INPUT_NORMS of the normalisation its usual checkpoints were trained with. */
  defaultInputNorm: keyof typeof INPUT_NORMS;
  /** The zoo architecture and its options, read from the tensors' shapes. */
  zoo(tensors: Map<string, SafeTensor>, inputShape: [number, number, number]): { architecture: string; options: Record<string, unknown> };
  assignments(tensors: Map<string, SafeTensor>): Assignment[];
}

/** A norm layer: GroupNorm has gamma and beta; BatchNorm also its running statistics. */
const norm = (layer: string, prefix: string, kind: 'batch' | 'group' = 'batch'): Assignment[] => [
  { layer, weight: 'gamma', tensor: `${prefix}.weight`, layout: 'vector' },
  { layer, weight: 'beta', tensor: `${prefix}.bias`, layout: 'vector' },
  ...(kind === 'batch'
    ? ([
        { layer, weight: 'moving_mean', tensor: `${prefix}.running_mean`, layout: 'vector' },
        { layer, weight: 'moving_variance', tensor: `${prefix}.running_var`, layout: 'vector' },
      ] as const)
    : []),
];
const conv = (layer: string, tensor: string): Assignment => ({ layer, weight: 'kernel', tensor, layout: 'conv' });
const head = (): Assignment[] => [
  { layer: 'head', weight: 'kernel', tensor: 'fc.weight', layout: 'linear' },
  { layer: 'head', weight: 'bias', tensor: 'fc.bias', layout: 'vector' },
];

/** How many `${prefix}.{n}.conv1.weight` there are: the blocks of a stage. */
function countBlocks(tensors: Map<string, SafeTensor>, prefix: string): number {
  let n = 0;
  while (tensors.has(`${prefix}.${n}.conv1.weight`)) n++;
  return n;
}

/** The stem's input channels must be the image's. */
function checkChannels(stem: SafeTensor, inputShape: [number, number, number]): void {
  if (stem.shape[1] !== inputShape[2]) {
    throw new CttaError(`the network takes ${stem.shape[1]} input channels, but --input says ${inputShape[2]}`, { fix: `--input ${inputShape[0]}x${inputShape[1]}x${stem.shape[1]}` });
  }
}

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
  const blocksPerStage = (tensors: Map<string, SafeTensor>) => countBlocks(tensors, 'block1.layer');
  return {
    name,
    description: depth ? `RobustBench's WideResNet-${depth}-<widen> (CIFAR-10-C "Standard": widen 10)` : "RobustBench's WideResNet, any depth 6n+4 and widen",
    defaultInput: [32, 32, 3],
    // RobustBench's models take [0, 1] images (any normalisation is inside the model).
    defaultInputNorm: 'none',
    zoo(tensors, inputShape) {
      const n = blocksPerStage(tensors);
      const found = 6 * n + 4;
      if (depth !== undefined && found !== depth) {
        throw new CttaError(`the state_dict is a WideResNet-${found}, not ${name}`, { fix: `use --arch wrn (any depth) or the checkpoint of a WideResNet-${depth}` });
      }
      const first = need(tensors, 'block1.layer.0.conv1.weight', name);
      const head = need(tensors, 'fc.weight', name);
      checkChannels(need(tensors, 'conv1.weight', name), inputShape);
      return {
        architecture: depth ? name : 'wrn',
        options: { inputShape, numClasses: head.shape[0], widen: first.shape[0]! / 16, ...(depth ? {} : { depth: found }), padding: 'torch' },
      };
    },
    assignments(tensors) {
      const n = blocksPerStage(tensors);
      const out: Assignment[] = [conv('stem_conv', 'conv1.weight')];
      for (let stage = 1; stage <= 3; stage++) {
        for (let i = 0; i < n; i++) {
          const ours = `s${stage}_b${i}`;
          const theirs = `block${stage}.layer.${i}`;
          out.push(...norm(`${ours}_norm1`, `${theirs}.bn1`), conv(`${ours}_conv1`, `${theirs}.conv1.weight`));
          out.push(...norm(`${ours}_norm2`, `${theirs}.bn2`), conv(`${ours}_conv2`, `${theirs}.conv2.weight`));
          if (tensors.has(`${theirs}.convShortcut.weight`)) out.push(conv(`${ours}_proj`, `${theirs}.convShortcut.weight`));
        }
      }
      out.push(...norm('final_norm', 'bn1'), ...head());
      return out;
    },
  };
}

/**
 * TTT's CIFAR ResNet (yueatsprograms/ttt_cifar_release, models/ResNet.py): module names conv1,
 * layer{1,2,3}.{i}.{bn1,conv1,bn2,conv2}, bn, fc; the shortcuts have no parameters. BatchNorm
 * when the state_dict has running statistics, GroupNorm otherwise (its group count is not in the
 * state_dict: TTT uses 8; `groups` in the import options).
 */
function tttResNet(name: string, depth?: number): TorchArchitecture {
  const kind = (tensors: Map<string, SafeTensor>) => (tensors.has('bn.running_mean') ? 'batch' : 'group');
  return {
    name,
    description: depth ? `TTT's CIFAR ResNet-${depth} (also TENT's and LAME's), BatchNorm or GroupNorm` : "TTT's CIFAR ResNet, any depth 6n+2 and width",
    defaultInput: [32, 32, 3],
    defaultInputNorm: 'ttt',
    zoo(tensors, inputShape) {
      // TTT's final norm is `bn` (torchvision's ResNets have none; their stem norm is `bn1`).
      need(tensors, 'bn.weight', name);
      need(tensors, 'layer1.0.conv1.weight', name);
      const found = 6 * countBlocks(tensors, 'layer1') + 2;
      if (depth !== undefined && found !== depth) {
        throw new CttaError(`the state_dict is TTT's ResNet-${found}, not ${name}`, { fix: `use --arch ttt_resnet (any depth) or the checkpoint of a ResNet-${depth}` });
      }
      checkChannels(need(tensors, 'conv1.weight', name), inputShape);
      return {
        architecture: depth ? `ttt_resnet${depth}` : 'ttt_resnet',
        options: { inputShape, numClasses: need(tensors, 'fc.weight', name).shape[0], width: need(tensors, 'layer1.0.conv1.weight', name).shape[0]! / 16, norm: kind(tensors), ...(depth ? {} : { depth: found }), padding: 'torch' },
      };
    },
    assignments(tensors) {
      const n = countBlocks(tensors, 'layer1');
      const k = kind(tensors);
      const out: Assignment[] = [conv('stem_conv', 'conv1.weight')];
      for (let stage = 1; stage <= 3; stage++) {
        for (let i = 0; i < n; i++) {
          const ours = `s${stage}_b${i}`;
          const theirs = `layer${stage}.${i}`;
          out.push(...norm(`${ours}_norm1`, `${theirs}.bn1`, k), conv(`${ours}_conv1`, `${theirs}.conv1.weight`));
          out.push(...norm(`${ours}_norm2`, `${theirs}.bn2`, k), conv(`${ours}_conv2`, `${theirs}.conv2.weight`));
        }
      }
      out.push(...norm('final_norm', 'bn', k), ...head());
      return out;
    },
  };
}

/**
 * torchvision's ResNet-50 (torchvision/models/resnet.py, the ImageNet-C model of the CTTA
 * papers): conv1, bn1, layer{1-4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}, fc.
 */
const RESNET50_BLOCKS = [3, 4, 6, 3];
const resNet50: TorchArchitecture = {
  name: 'resnet50',
  description: "torchvision's ResNet-50 (ImageNet-C: IMAGENET1K_V1 weights)",
  defaultInput: [224, 224, 3],
  defaultInputNorm: 'imagenet',
  zoo(tensors, inputShape) {
    const blocks = [1, 2, 3, 4].map((s) => countBlocks(tensors, `layer${s}`));
    if (blocks.join() !== RESNET50_BLOCKS.join()) {
      if (blocks[0] === 0) need(tensors, 'layer1.0.conv1.weight', 'resnet50');
      throw new CttaError(`the state_dict is a ResNet with [${blocks.join(', ')}] blocks per stage, not resnet50's [${RESNET50_BLOCKS.join(', ')}]`, { fix: 'import a ResNet-50 checkpoint (torchvision.models.resnet50)' });
    }
    const stem = need(tensors, 'conv1.weight', 'resnet50');
    checkChannels(stem, inputShape);
    return { architecture: 'resnet50', options: { inputShape, numClasses: need(tensors, 'fc.weight', 'resnet50').shape[0], width: stem.shape[0], padding: 'torch' } };
  },
  assignments(tensors) {
    const out: Assignment[] = [conv('stem_conv', 'conv1.weight'), ...norm('stem_norm', 'bn1')];
    RESNET50_BLOCKS.forEach((n, s) => {
      for (let i = 0; i < n; i++) {
        const ours = `s${s + 1}_b${i}`;
        const theirs = `layer${s + 1}.${i}`;
        for (const j of [1, 2, 3]) out.push(conv(`${ours}_conv${j}`, `${theirs}.conv${j}.weight`), ...norm(`${ours}_norm${j}`, `${theirs}.bn${j}`));
        if (tensors.has(`${theirs}.downsample.0.weight`)) out.push(conv(`${ours}_proj`, `${theirs}.downsample.0.weight`), ...norm(`${ours}_proj_norm`, `${theirs}.downsample.1`));
      }
    });
    out.push(...head());
    return out;
  },
};

export const TORCH_ARCHITECTURES: readonly TorchArchitecture[] = [wideResNet('wrn28_10', 28), wideResNet('wrn'), tttResNet('resnet26', 26), tttResNet('ttt_resnet'), resNet50];

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

/** What the state_dict does not say: the input normalisation (default: the architecture's usual one) and GroupNorm's groups. */
export interface ImportOptions {
  inputNorm?: InputNorm | 'none' | 'default';
  groups?: number;
}

/** Builds the zoo network of `arch` and fills it from the state_dict's tensors. */
export function importStateDict(raw: Map<string, SafeTensor>, archName: string, inputShape: [number, number, number], extra: ImportOptions = {}): Network {
  const tensors = normalizeNames(raw);
  const arch = torchArchitecture(archName);
  const zoo = arch.zoo(tensors, inputShape);
  const architecture = zoo.architecture;
  const inputNorm = extra.inputNorm === undefined || extra.inputNorm === 'default' ? INPUT_NORMS[arch.defaultInputNorm] : extra.inputNorm === 'none' ? undefined : extra.inputNorm;
  if (inputNorm && inputNorm.mean.length !== inputShape[2]) {
    throw new CttaError(`the input normalisation has ${inputNorm.mean.length} channel means, the input ${inputShape[2]} channels`, { fix: 'give one mean and one std per input channel' });
  }
  const options = { ...zoo.options, ...(inputNorm ? { inputNorm } : {}), ...(zoo.options['norm'] === 'group' && extra.groups ? { groups: extra.groups } : {}) };
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
