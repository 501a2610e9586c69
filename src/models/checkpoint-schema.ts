/**
 * What a checkpoint's two JSON files must hold, checked before anything they describe is read or
 * built: model.json as a tfjs LayersModel (its weight list and a topology tfjs can wire) and
 * manifest.json as a ctta manifest. Every failure is one line naming the file and the field.
 */
import { z } from 'zod';
import { CttaError } from '../errors.js';
import { oneLine, parseJsonBytes, quote } from '../util/json-file.js';
import type { ModelManifest } from './checkpoint.js';
import { functionalGraphProblem } from './topology-check.js';

const sha256Hex = z.string({ error: 'expected a sha256 (64 lowercase hex digits)' }).regex(/^[0-9a-f]{64}$/, 'expected a sha256 (64 lowercase hex digits)');
/** Tensor shapes: non-negative safe integers (zod 4's int() refuses unsafe integers). */
const dims = z.array(z.number().int().nonnegative());

const weightEntrySchema = z.looseObject({
  name: z.string().min(1),
  shape: dims,
  // What a LayersModel stores; string and complex weights have no fixed size per element.
  dtype: z.enum(['float32', 'int32', 'bool']),
  quantization: z
    .looseObject({ dtype: z.enum(['uint8', 'uint16', 'float16']), scale: z.number().optional(), min: z.number().optional() })
    .optional(),
  group: z.string().optional(),
});

const modelJsonSchema = z.looseObject({
  modelTopology: z.record(z.string(), z.unknown()),
  weightsManifest: z.array(z.looseObject({ paths: z.array(z.string().min(1)), weights: z.array(weightEntrySchema) })),
});
export type ModelJson = z.output<typeof modelJsonSchema>;

const vidaOptionsSchema = z.looseObject({
  layers: z.string().optional(),
  lowRank: z.number().int().positive().optional(),
  highRankFactor: z.number().positive().optional(),
  initStd: z.enum(['1/r', '1/r^2']).optional(),
});

// Field order matters: zod reports the first failing field, and `file` is the one that matters most.
const adaptersSchema = z.looseObject({
  kind: z.string().min(1),
  file: z.string().min(1),
  options: z.record(z.string(), z.unknown()),
  tensors: z.array(z.looseObject({ name: z.string().min(1), shape: dims })),
  sha256: sha256Hex,
});

const manifestSchema = z.looseObject({
  format: z.literal('ctta-model/1'),
  architecture: z.string().min(1),
  options: z.record(z.string(), z.unknown()),
  dataset: z.string(),
  classNames: z.array(z.string()),
  classes: z.array(z.number().int().nonnegative()),
  cleanTestAccuracy: z.number().optional(),
  weightsSha256: sha256Hex,
  modelJsonSha256: sha256Hex,
  command: z.string().optional(),
  training: z.record(z.string(), z.unknown()).optional(),
  createdWith: z.record(z.string(), z.unknown()).optional(),
  adapters: adaptersSchema.optional(),
});

/** `weightsManifest[0].paths[1]` */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i === 0 ? '' : '.'}${String(k)}`)).join('');
}

/** A file's first schema failure as one line: `<file>: classes[1]: Invalid input: expected int, received number`. */
function schemaError(shown: string, error: z.ZodError, fix: string): CttaError {
  const issue = error.issues[0]!;
  return new CttaError(oneLine(`${shown}: ${fieldPath(issue.path) || '(top level)'}: ${issue.message}`), { fix });
}

/** Validates manifest.json; a manifest without `modelJsonSha256` comes from an older ctta. */
export function parseManifest(bytes: Uint8Array, shown: string): ModelManifest {
  const fix = 'restore manifest.json (git checkout) or re-create the checkpoint with the command in it';
  const raw = parseJsonBytes(bytes, shown, fix);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CttaError(`${shown} is not a ctta manifest (not a JSON object)`, { fix });
  const format = (raw as Record<string, unknown>)['format'];
  if (format !== 'ctta-model/1') {
    throw new CttaError(`${shown} has format ${typeof format === 'string' ? quote(format) : 'missing'}, not "ctta-model/1"`, {
      fix: 'it was written by another (newer?) ctta: load it with that version, or re-create it with the command in the manifest',
    });
  }
  if (!('modelJsonSha256' in raw)) {
    throw new CttaError(`${shown} has no modelJsonSha256: it was written by an older ctta, whose manifests did not check model.json`, {
      fix: 're-run the command in the manifest (or load the model with that ctta and re-save it with saveModel) to write a current manifest',
    });
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw schemaError(shown, parsed.error, fix);
  const adapters = parsed.data.adapters;
  if (adapters?.kind === 'vida') {
    const options = vidaOptionsSchema.safeParse(adapters.options);
    if (!options.success) {
      const issue = options.error.issues[0]!;
      throw new CttaError(oneLine(`${shown}: adapters.options${fieldPath(['', ...issue.path])}: ${issue.message}`), { fix });
    }
  }
  return parsed.data as ModelManifest;
}

/** Validates model.json as a tfjs LayersModel file whose topology tfjs can wire. */
export function parseModelJson(bytes: Uint8Array, shown: string): ModelJson {
  const raw = parseJsonBytes(bytes, shown, 'restore the file from the repository or re-create the model');
  const notLayers = () =>
    new CttaError(`${shown} is not a tfjs LayersModel (no modelTopology/weightsManifest)`, {
      fix: 'convert the model with tensorflowjs_converter --output_format tfjs_layers_model',
    });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw notLayers();
  const o = raw as Record<string, unknown>;
  if (o['modelTopology'] === undefined || o['weightsManifest'] === undefined) throw notLayers();
  const parsed = modelJsonSchema.safeParse(raw);
  if (!parsed.success) throw schemaError(shown, parsed.error, 're-export the model: model.json is malformed');
  // tfjs unwraps a Keras `model_config` the same way.
  const topology = parsed.data.modelTopology;
  const problem = functionalGraphProblem(topology['model_config'] ?? topology);
  if (problem) {
    throw new CttaError(`${shown}: tfjs cannot build the model it describes: ${problem}`, {
      fix: 'the file is corrupted or was not written by tfjs: restore it or re-export the model',
    });
  }
  return parsed.data;
}
