/**
 * The model a scenario starts from: a checkpoint (a path, as the test-time scenarios use), or an
 * untrained zoo architecture (`{"arch": "resnet18_reduced", "init": "scratch"}`), as the online
 * continual-learning papers train from scratch on the stream.
 *
 * A scratch model is built for the scenario's images and classes: its input shape is the
 * stream's, its head spans every class of the dataset, and its initial weights are seeded by the
 * run's seed (seed k of a sweep is a different initialisation, as the OCL codebases' seeds are).
 * Its identity (`hash`) is the architecture and its resolved options except those three, which
 * the scenario and the seed already identify.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CttaError } from '../errors.js';
import { canonicalJson } from '../util/json-file.js';
import type { Network } from './network.js';
import { createModel, isZooModel, listModels, resolveModelOptions } from './registry.js';

export const scratchModelSchema = z.strictObject({
  /** A zoo architecture (`ctta list models`). */
  arch: z.string().min(1),
  /** "scratch": freshly initialised with the run's seed (the only kind so far). */
  init: z.literal('scratch'),
  /** Architecture options (e.g. `width`, `norm`); inputShape, numClasses and seed are set by the run. */
  options: z.record(z.string(), z.unknown()).default({}),
});

export type ScratchModel = z.infer<typeof scratchModelSchema>;
/** A scenario's `model` field. */
export type ModelRef = string | ScratchModel;

/** Options the run sets on a scratch model: a scenario giving them would be overridden, so it may not. */
const RUN_SET = ['inputShape', 'numClasses', 'seed'] as const;

export function isScratch(model: ModelRef): model is ScratchModel {
  return typeof model !== 'string';
}

/** How messages name the model: its path, or `resnet18_reduced (scratch)`. */
export function describeModel(model: ModelRef): string {
  return isScratch(model) ? `${model.arch} (scratch)` : model;
}

/** Checks a scratch model's architecture and options (before any run starts); `file` names the scenario. */
export function checkScratchModel(model: ScratchModel, file: string): void {
  if (!isZooModel(model.arch)) {
    throw new CttaError(`${file}: model.arch: "${model.arch}" is not a zoo architecture`, {
      fix: `use one of ${listModels().map((m) => m.name).join(', ')}`,
    });
  }
  const given = RUN_SET.filter((k) => k in model.options);
  if (given.length > 0) {
    throw new CttaError(`${file}: model.options.${given[0]} is set by the run (the stream's image shape, the dataset's classes, the seed)`, {
      fix: `remove model.options.${given[0]}`,
    });
  }
  try {
    resolveModelOptions(model.arch, model.options);
  } catch (err) {
    if (err instanceof CttaError) throw new CttaError(`${file}: ${err.message}`, { fix: err.fix });
    throw err;
  }
}

/** The identity of a scratch model: architecture + resolved options (minus what the run sets). */
export function scratchModelHash(model: ScratchModel): string {
  const options = resolveModelOptions(model.arch, model.options);
  for (const k of RUN_SET) delete options[k];
  return createHash('sha256').update(canonicalJson({ arch: model.arch, init: model.init, options })).digest('hex');
}

export interface ScratchShape {
  inputShape: [number, number, number];
  numClasses: number;
  seed: number;
}

/** The freshly initialised network of a scratch model for one run. */
export function buildScratchModel(model: ScratchModel, shape: ScratchShape): { network: Network; hash: string } {
  const network = createModel(model.arch, { ...model.options, ...shape });
  return { network, hash: scratchModelHash(model) };
}

