/**
 * The model zoo, timm-style: `createModel(name, options)` with validated options and defaults.
 */
import { z } from 'zod';
import type * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import { Network } from './network.js';
import { buildResNet } from './zoo/resnet.js';
import { buildWideResNet } from './zoo/wide-resnet.js';

const commonOptions = {
  inputShape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]).default([28, 28, 1]),
  numClasses: z.number().int().min(2).default(10),
  norm: z.enum(['batch', 'group']).default('batch'),
  groups: z.number().int().positive().default(8),
  seed: z.number().int().nonnegative().default(0),
};

const resnetOptions = z.strictObject({ ...commonOptions, width: z.number().int().positive().default(16) });
const wrnOptions = z.strictObject({ ...commonOptions, widen: z.number().int().positive().default(10) });

interface ModelEntry {
  description: string;
  schema: z.ZodType<Record<string, unknown>>;
  build: (options: Record<string, unknown>) => tf.LayersModel;
  /** Options forced by the name (e.g. `_gn` variants). */
  fixed?: Record<string, unknown>;
}

const resnet = (depth: number) => (o: Record<string, unknown>) =>
  buildResNet({ ...(o as z.infer<typeof resnetOptions>), depth });

const MODELS: Record<string, ModelEntry> = {
  resnet8: { description: 'CIFAR-style ResNet-8 (1 block per stage), BatchNorm', schema: resnetOptions, build: resnet(8) },
  resnet20: { description: 'CIFAR-style ResNet-20 (3 blocks per stage), BatchNorm', schema: resnetOptions, build: resnet(20) },
  resnet26: { description: 'CIFAR-style ResNet-26 (4 blocks per stage), BatchNorm', schema: resnetOptions, build: resnet(26) },
  resnet8_gn: {
    description: 'ResNet-8 with GroupNorm (batch-independent; for label-shift studies)',
    schema: resnetOptions,
    build: resnet(8),
    fixed: { norm: 'group' },
  },
  resnet26_gn: {
    description: 'ResNet-26 with GroupNorm, as in the TTT/LAME label-shift experiments',
    schema: resnetOptions,
    build: resnet(26),
    fixed: { norm: 'group' },
  },
  wrn28_10: {
    description: 'WideResNet-28-10, pre-activation (the CIFAR CTTA benchmarks\' model); definition only',
    schema: wrnOptions,
    build: (o) => buildWideResNet({ ...(o as z.infer<typeof wrnOptions>), depth: 28 }),
  },
};

export function listModels(): { name: string; description: string }[] {
  return Object.entries(MODELS).map(([name, e]) => ({ name, description: e.description }));
}

/** Validates options for a zoo model and fills in defaults. */
export function resolveModelOptions(name: string, options: Record<string, unknown> = {}): Record<string, unknown> {
  const entry = MODELS[name];
  if (!entry) {
    throw new CttaError(`unknown model "${name}"`, { fix: `use one of: ${Object.keys(MODELS).join(', ')}` });
  }
  const parsed = entry.schema.safeParse({ ...options, ...entry.fixed });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : '(options)');
    throw new CttaError(`model "${name}": option ${field}: ${issue.message}`, {
      fix: `valid options: ${Object.keys((entry.schema as unknown as z.ZodObject).shape).join(', ')}`,
    });
  }
  return parsed.data;
}

/** A freshly initialised zoo model (seeded: same options, same weights). */
export function createModel(name: string, options: Record<string, unknown> = {}): Network {
  const resolved = resolveModelOptions(name, options);
  return new Network(MODELS[name]!.build(resolved), { architecture: name, options: resolved });
}

export function isZooModel(name: string): boolean {
  return name in MODELS;
}
