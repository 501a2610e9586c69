/**
 * The model zoo, timm-style: `createModel(name, options)` with validated options and defaults.
 * More architectures are added with `registerModel` (e.g. from a `--plugin` module).
 */
import { z } from 'zod';
import type * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import { Registry } from '../util/registry.js';
import { Network } from './network.js';
import { buildBottleneckResNet } from './zoo/bottleneck-resnet.js';
import { buildTttResNet, buildWideResNet } from './zoo/preact-resnet.js';
import { buildResNet, cifarResNetBlocks } from './zoo/resnet.js';

/**
 * Options every zoo model takes; spread them into a registered model's schema so that
 * `ctta pretrain` (which passes inputShape, numClasses and seed) can build it.
 */
export const commonModelOptions = {
  inputShape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]).default([28, 28, 1]),
  numClasses: z.number().int().min(2).default(10),
  norm: z.enum(['batch', 'group']).default('batch'),
  groups: z.number().int().positive().default(8),
  seed: z.number().int().nonnegative().default(0),
};

/** What `registerModel` takes. */
export interface ModelDefinition<O extends Record<string, unknown> = Record<string, unknown>> {
  name: string;
  description: string;
  /** Validates options and fills defaults; a zod object schema, so errors name the option. */
  schema: z.ZodType<O>;
  /** A freshly initialised model; seeded by the options, so the same options give the same weights. */
  build: (options: O) => tf.LayersModel;
  /** Options forced by the name (e.g. `_gn` variants). */
  fixed?: Partial<O>;
}

const models = new Registry<ModelDefinition>('model', 'ctta.models.registry');

/** Adds (or replaces) a zoo architecture; `createModel(definition.name, options)` then builds it. */
export function registerModel<O extends Record<string, unknown>>(definition: ModelDefinition<O>): void {
  models.register(definition as unknown as ModelDefinition);
}

const padding = z.enum(['same', 'torch']).default('same');
const resnetOptions = z.strictObject({ ...commonModelOptions, width: z.number().int().positive().default(16) });
/** Per-channel (x - mean) / std before the first conv, for weights trained on normalised images. */
const inputNorm = z
  .strictObject({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) })
  .refine((n) => n.mean.length === n.std.length, 'mean and std need the same number of channels')
  .optional();
const wrnOptions = z.strictObject({
  ...commonModelOptions,
  depth: z.number().int().refine((d) => d >= 10 && (d - 4) % 6 === 0, 'a WideResNet depth is 6n+4, at least 10').default(28),
  widen: z.number().int().positive().default(10),
  padding,
  inputNorm,
});
const tttOptions = z.strictObject({
  ...commonModelOptions,
  depth: z.number().int().refine((d) => d >= 8 && (d - 2) % 6 === 0, "TTT's ResNet depth is 6n+2, at least 8").default(26),
  width: z.number().int().positive().default(1),
  padding,
  inputNorm,
});
const bottleneckOptions = z.strictObject({ ...commonModelOptions, width: z.number().int().positive().default(64), padding, inputNorm });
type ResNetOptions = z.infer<typeof resnetOptions>;

const resnet = (name: string, depth: number, description: string, fixed?: Partial<ResNetOptions>): ModelDefinition<ResNetOptions> => ({
  name,
  description,
  schema: resnetOptions,
  build: (o) => buildResNet({ ...o, blocks: cifarResNetBlocks(depth), name: `resnet${depth}` }),
  fixed,
});

/** ResNet-18 of the online continual-learning code: 4 stages of 2 blocks, widths w..8w. */
const resnet18 = (name: string, width: number, description: string): ModelDefinition<ResNetOptions> => ({
  name,
  description,
  schema: z.strictObject({ ...commonModelOptions, width: z.number().int().positive().default(width) }),
  build: (o) => buildResNet({ ...o, blocks: [2, 2, 2, 2], name }),
});

registerModel(resnet('resnet8', 8, 'CIFAR-style ResNet-8 (1 block per stage), BatchNorm'));
registerModel(resnet('resnet20', 20, 'CIFAR-style ResNet-20 (3 blocks per stage), BatchNorm'));
registerModel(resnet('resnet26', 26, 'CIFAR-style ResNet-26 (4 blocks per stage), BatchNorm'));
registerModel(resnet('resnet8_gn', 8, 'ResNet-8 with GroupNorm (batch-independent; for label-shift studies)', { norm: 'group' }));
registerModel(resnet('resnet26_gn', 26, "ResNet-26 with GroupNorm (batch-independent); TTT's own GN ResNet-26 is ttt_resnet26", { norm: 'group' }));
registerModel(resnet18('resnet18', 64, 'ResNet-18 for small images (3x3 stem, no max-pool; 11.2M parameters), as the OCL code trains from scratch'));
registerModel(resnet18('resnet18_reduced', 20, "reduced ResNet-18 (width 20; 1.1M parameters): the OCL benchmarks' model (Mai et al., OnPro, OCM)"));
registerModel({
  name: 'wrn28_10',
  description: "WideResNet-28-10, pre-activation (the CIFAR CTTA benchmarks' model, RobustBench Standard); load it with ctta import-torch",
  schema: wrnOptions,
  build: (o) => buildWideResNet(o),
  fixed: { depth: 28 },
});
registerModel({
  name: 'wrn',
  description: 'WideResNet-<depth>-<widen>, pre-activation (options depth 6n+4, widen); wrn28_10 is depth 28',
  schema: wrnOptions,
  build: (o) => buildWideResNet(o),
});

registerModel({
  name: 'ttt_resnet26',
  description: "TTT's CIFAR ResNet-26 (Sun et al. 2020; also TENT's and LAME's): pre-activation, parameter-free shortcuts, BatchNorm or GroupNorm; load it with ctta import-torch --arch resnet26",
  schema: tttOptions,
  build: (o) => buildTttResNet(o),
  fixed: { depth: 26 },
});
registerModel({
  name: 'ttt_resnet',
  description: "TTT's CIFAR ResNet of any depth 6n+2 and width (ttt_resnet26 is depth 26)",
  schema: tttOptions,
  build: (o) => buildTttResNet(o),
});
registerModel({
  name: 'resnet50',
  description: "torchvision's ResNet-50 (bottleneck blocks, 7x7 stem + max-pool; 25.6M parameters at 1000 classes), the ImageNet-C model; load it with ctta import-torch --arch resnet50",
  schema: bottleneckOptions,
  build: (o) => buildBottleneckResNet({ ...o, blocks: [3, 4, 6, 3], name: 'resnet50' }),
});

export function listModels(): { name: string; description: string }[] {
  return models.list().map((m) => ({ name: m.name, description: m.description }));
}

/** Validates options for a zoo model and fills in defaults. */
export function resolveModelOptions(name: string, options: Record<string, unknown> = {}): Record<string, unknown> {
  const entry = models.get(name);
  const parsed = entry.schema.safeParse({ ...options, ...entry.fixed });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : '(options)');
    const shape = (entry.schema as { shape?: Record<string, unknown> }).shape;
    throw new CttaError(`model "${name}": option ${field}: ${issue.message}`, {
      fix: shape ? `valid options: ${Object.keys(shape).join(', ')}` : `see the definition of model ${name}`,
    });
  }
  return parsed.data;
}

/** A freshly initialised zoo model (seeded: same options, same weights). */
export function createModel(name: string, options: Record<string, unknown> = {}): Network {
  const resolved = resolveModelOptions(name, options);
  return new Network(models.get(name).build(resolved), { architecture: name, options: resolved });
}

export function isZooModel(name: string): boolean {
  return models.has(name);
}
