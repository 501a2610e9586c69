/**
 * Checkpoints in the standard tfjs LayersModel format (model.json + weights.bin, loadable by
 * `tf.loadLayersModel` in a browser too) plus a `manifest.json` that makes a shipped model
 * self-describing: architecture, dataset, classes, clean accuracy, the sha256 of its weights and
 * of its model.json, and the exact command that reproduces it.
 *
 * A checkpoint folder is untrusted input (models are downloaded and shared). `loadModel`:
 * - reads only files inside the folder (checkpoint-paths.ts): every path model.json or
 *   manifest.json names (weights, adapters) must be relative, must not climb out with `..`, and
 *   must not resolve outside through a symlink, and nothing about an outside file reaches a message;
 * - refuses JSON files above MAX_JSON_BYTES unread and reports JSON syntax errors by line and
 *   column without quoting the file (util/json-file.ts); validates model.json's weight manifest,
 *   manifest.json's fields and that tfjs can wire the topology (checkpoint-schema.ts,
 *   topology-check.ts); tfjs failures (unknown layer class, a topology it cannot build) become one line;
 * - verifies the manifest's sha256s of model.json (required: `modelJsonSha256`), the weights and
 *   the adapters before building the model.
 * This file holds the checkpoint's types and the order of those steps.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { realpath, rename, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { CttaError } from '../errors.js';
import { oneLine, quote, readJsonBytes } from '../util/json-file.js';
import { ensureOutputDir } from '../util/output-dir.js';
import { repoRoot } from '../util/paths.js';
import { Network } from './network.js';
import { VidaAdapters, type VidaAdapterOptions } from './adapters/vida.js';
import { fileInside, readInside, regularFileSize, RESTORE_FIX } from './checkpoint-paths.js';
import { parseManifest, parseModelJson, type ModelJson } from './checkpoint-schema.js';
// Registers ctta's own layer classes (GroupNorm, input normalisation, zero-channel padding) so that models using them deserialize.
import './layers/index.js';

// Part of this module's API since before they moved to their own files.
export { jsonErrorOffset } from '../util/json-file.js';
export { functionalGraphProblem } from './topology-check.js';

export interface ModelManifest {
  format: 'ctta-model/1';
  /** Zoo name (`resnet8`), or `layers-model` for an imported LayersModel. */
  architecture: string;
  options: Record<string, unknown>;
  dataset: string;
  classNames: string[];
  /** Dataset class ids the model was trained on, in head order (e.g. [0,1,2,3,4] for base5). */
  classes: number[];
  /** Accuracy on the dataset's clean test split (restricted to `classes`), in [0, 1]. */
  cleanTestAccuracy?: number;
  weightsSha256: string;
  /** sha256 of model.json's bytes: the topology and weight layout are checked like the weights. */
  modelJsonSha256: string;
  /** The command that reproduces this checkpoint from scratch. */
  command?: string;
  training?: Record<string, unknown>;
  createdWith?: Record<string, unknown>;
  /** Adapters saved beside the model (`adapters.bin`, float32 in `tensors` order). */
  adapters?: { kind: string; options: object; file: string; tensors: { name: string; shape: number[] }[]; sha256: string };
}

export type ManifestFields = Omit<ModelManifest, 'format' | 'architecture' | 'options' | 'weightsSha256' | 'modelJsonSha256' | 'adapters'>;

export interface LoadedModel {
  network: Network;
  /** Present for ctta checkpoints; undefined for a plain tfjs model.json. */
  manifest: ModelManifest | undefined;
  dir: string;
  /**
   * The model's identity: `modelHash` of the sha256s of the bytes of model.json, of the weights
   * (all weight files concatenated in weightsManifest order, i.e. `weightsSha256`) and of the
   * adapters file when the manifest lists one. Two loads give the same hash exactly when they load
   * the same topology, weights and adapters, with or without a manifest. Result files record it
   * as the model part of a run's identity.
   */
  hash: string;
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The model identity `LoadedModel.hash`, from three sha256s (lowercase hex): the sha256 of the
 * UTF-8 text
 * `ctta-model-hash/1\nmodel.json <modelJsonSha256>\nweights <weightsSha256>\nadapters <adaptersSha256, or none>\n`.
 * A manifest holds all three (`modelJsonSha256`, `weightsSha256`, `adapters.sha256`), so the
 * hash of a checkpoint can be computed without loading it.
 */
export function modelHash(digests: { modelJsonSha256: string; weightsSha256: string; adaptersSha256?: string | undefined }): string {
  return sha256(
    `ctta-model-hash/1\nmodel.json ${digests.modelJsonSha256}\nweights ${digests.weightsSha256}\nadapters ${digests.adaptersSha256 ?? 'none'}\n`,
  );
}

/** Writes model.json, weights.bin and manifest.json into `dir` (created if needed). */
export async function saveModel(network: Network, dir: string, fields: ManifestFields): Promise<ModelManifest> {
  ensureOutputDir(dir);
  let artifacts: tf.io.ModelArtifacts | undefined;
  await network.model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const weightData = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts!.weightData!));
  const modelJson = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: 'ctta',
    modelTopology: artifacts!.modelTopology,
    weightsManifest: [{ paths: ['weights.bin'], weights: artifacts!.weightSpecs }],
  };
  const modelJsonText = JSON.stringify(modelJson);
  const manifest: ModelManifest = {
    format: 'ctta-model/1',
    architecture: network.spec.architecture,
    options: network.spec.options,
    ...fields,
    weightsSha256: sha256(weightData),
    modelJsonSha256: sha256(new TextEncoder().encode(modelJsonText)),
  };
  // Write each file under a temporary name, then rename: a crash never leaves a checkpoint whose
  // manifest describes weights that were not fully written.
  if (network.adapters) {
    const named = [...network.adapters.namedVariables()];
    const bytes = new Uint8Array(Float32Array.from(named.flatMap(([, v]) => Array.from(v.dataSync()))).buffer);
    manifest.adapters = {
      kind: network.adapters.kind,
      options: network.adapters.options,
      file: 'adapters.bin',
      tensors: named.map(([name, v]) => ({ name, shape: v.shape })),
      sha256: sha256(bytes),
    };
    await atomicWrite(join(dir, 'adapters.bin'), bytes);
  }
  await atomicWrite(join(dir, 'weights.bin'), weightData);
  await atomicWrite(join(dir, 'model.json'), modelJsonText);
  await atomicWrite(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

async function atomicWrite(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** model.json and manifest.json above this size are refused unread (a model.json holds the topology; weights live in .bin files). */
export const MAX_JSON_BYTES = 64 * 2 ** 20;

/** model.json or manifest.json, read with the checks of util/json-file.ts. */
function readCheckpointJson(file: string, shown: string): Uint8Array {
  return readJsonBytes(file, {
    shown,
    maxBytes: MAX_JSON_BYTES,
    tooLargeFix: 'this is not a checkpoint file (a model.json holds the topology only, weights go in .bin files): restore or re-export the model',
    notFileFix: 'pass a checkpoint directory or a model.json file',
  });
}

/**
 * The model hash of a ctta checkpoint as its manifest describes it (no weights read, nothing
 * verified: `loadModel` verifies), or undefined when `dir` holds no readable, valid manifest.
 * For deciding whether a checkpoint a finished run used is still the same one.
 */
export function manifestModelHash(dir: string): string | undefined {
  try {
    const shown = join(dir, 'manifest.json');
    const m = parseManifest(readCheckpointJson(shown, shown), shown);
    return modelHash({ modelJsonSha256: m.modelJsonSha256, weightsSha256: m.weightsSha256, adaptersSha256: m.adapters?.sha256 });
  } catch {
    return undefined;
  }
}

/** Builds the LayersModel; tfjs's errors (multi-line, internal) become one line naming the file. */
async function buildModel(shown: string, modelJson: ModelJson, weightSpecs: tf.io.WeightsManifestEntry[], weightData: Uint8Array): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData: weightData.buffer as ArrayBuffer }));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // tfjs-layers' deserializeKerasObject: `Unknown ${module}: ${className}. This may be due to ...`
    const unknown = /^Unknown ([a-z][a-z ]*): ([\s\S]*?)\. This may be due/.exec(message);
    if (unknown) {
      const [, kind, name] = unknown;
      throw new CttaError(`${shown}: ${kind === 'layer' ? 'layer class' : kind} ${quote(name!)} is not known to tfjs/ctta`, {
        fix:
          kind === 'layer'
            ? 'use a model made of tfjs built-in layers (ctta adds GroupNorm, input normalisation and zero-channel padding), or register the class with tf.serialization.registerClass before loading'
            : 're-export the model with tfjs built-ins',
        cause: err,
      });
    }
    throw new CttaError(`${shown}: tfjs cannot build the model it describes (its topology or weight list is inconsistent)`, {
      fix: 'the file is corrupted or was not written by tfjs: restore it or re-export the model',
      cause: err,
    });
  }
}

/**
 * Where a checkpoint path points: as given (relative to the working directory) when it exists;
 * else a shipped model, by name (`fmnist-resnet8`) or as `models/fmnist-resnet8`, so a user's
 * own project can load them from the installed package.
 */
function locateCheckpoint(path: string): string {
  const given = resolve(path);
  if (isAbsolute(path) || existsSync(given)) return given;
  const shipped = [join(repoRoot(), path), join(repoRoot(), 'models', path)].find((p) => existsSync(p));
  return shipped ?? given;
}

/**
 * Loads a ctta checkpoint directory, or any tfjs LayersModel (`model.json` path or its directory),
 * and splits it at the penultimate layer. Every check (paths, sizes, sha256s) runs before the
 * model is built; see the top of this file.
 */
export async function loadModel(path: string): Promise<LoadedModel> {
  const full = locateCheckpoint(path);
  const isDir = await stat(full).then(
    (s) => s.isDirectory(),
    () => {
      throw new CttaError(`model not found: ${path}`, { fix: 'pass a checkpoint directory (e.g. models/fmnist-resnet8) or a model.json file' });
    },
  );
  const dir = isDir ? full : dirname(full);
  // Names in messages: as the user gave them.
  const shownDir = isDir ? path : dirname(path);
  const shownModelJson = isDir ? join(path, 'model.json') : path;
  const shownManifest = join(shownDir, 'manifest.json');
  const root = await realpath(dir).catch(() => {
    throw new CttaError(`model folder ${shownDir} cannot be read`, { fix: 'check the path and its permissions' });
  });

  // model.json: the file the user named, or the folder's own (which must be inside the folder).
  const modelJsonFile = isDir
    ? await fileInside(root, 'model.json', shownDir, 'file', () => {
        throw new CttaError(`model file not found: ${shownModelJson}`, { fix: 'check the path (a model directory holds model.json and weights)' });
      })
    : full;
  const modelJsonBytes = readCheckpointJson(modelJsonFile!, shownModelJson);
  const modelJsonSha256 = sha256(modelJsonBytes);

  // manifest.json: optional (a plain tfjs model has none), but when present, inside the folder.
  const manifestFile = await fileInside(root, 'manifest.json', shownDir, 'file', () => undefined);
  let manifest: ModelManifest | undefined;
  if (manifestFile !== undefined) {
    manifest = parseManifest(readCheckpointJson(manifestFile, shownManifest), shownManifest);
    if (manifest.modelJsonSha256 !== modelJsonSha256) {
      throw new CttaError(`${shownModelJson} does not match the modelJsonSha256 in manifest.json`, {
        fix: 'model.json was modified or corrupted: restore it (git checkout) or re-run the command in the manifest',
      });
    }
  }
  const modelJson = parseModelJson(modelJsonBytes, shownModelJson);

  // Weights: every file found inside the folder and sized before any is read.
  const files: [file: string, entry: string][] = [];
  let total = 0;
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) {
      const file = await fileInside(root, p, shownModelJson, 'weights path');
      total += await regularFileSize(file, shownModelJson, 'weights path', p);
      files.push([file, p]);
    }
    for (const w of group.weights) weightSpecs.push(w as tf.io.WeightsManifestEntry);
  }
  const expectedBytes = weightSpecs.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1) * bytesPerElement(w.quantization?.dtype ?? w.dtype), 0);
  if (total !== expectedBytes) {
    throw new CttaError(`weights of ${shownModelJson} hold ${total} bytes but model.json declares ${expectedBytes}`, {
      fix: 'the weights file is truncated or from another model: restore it',
    });
  }
  const weightData = concat(await Promise.all(files.map(([file, p]) => readInside(file, shownModelJson, 'weights path', p))));
  const weightsSha256 = sha256(weightData);
  if (manifest && manifest.weightsSha256 !== weightsSha256) {
    throw new CttaError(`weights in ${shownDir} do not match the sha256 in manifest.json`, {
      fix: 'the weights were modified or corrupted: restore them (git checkout) or re-run the command in the manifest',
    });
  }
  const adapterBytes = manifest?.adapters ? await readAdapters(root, shownManifest, manifest.adapters) : undefined;

  const model = await buildModel(shownModelJson, modelJson, weightSpecs, weightData);
  const spec = manifest
    ? { architecture: manifest.architecture, options: manifest.options }
    : { architecture: 'layers-model', options: { source: full } };
  let network: Network;
  try {
    network = new Network(model, spec);
  } catch (err) {
    model.dispose();
    if (err instanceof CttaError) throw new CttaError(oneLine(`${shownModelJson}: ${err.message}`), { fix: err.fix, exitCode: err.exitCode, cause: err });
    throw err;
  }
  if (manifest?.adapters && adapterBytes) {
    try {
      attachAdapters(network, manifest.adapters, adapterBytes);
    } catch (err) {
      network.dispose();
      if (err instanceof CttaError) throw new CttaError(oneLine(`${shownManifest}: ${err.message}`), { fix: err.fix, exitCode: err.exitCode, cause: err });
      throw new CttaError(`${shownManifest}: its adapters cannot be attached to the model`, { fix: RESTORE_FIX, cause: err });
    }
  }
  const hash = modelHash({ modelJsonSha256, weightsSha256, adaptersSha256: adapterBytes ? manifest!.adapters!.sha256 : undefined });
  return { network, manifest, dir, hash };
}

/** Finds, sizes, reads and verifies the adapters file the manifest lists. */
async function readAdapters(root: string, shownManifest: string, a: NonNullable<ModelManifest['adapters']>): Promise<Uint8Array> {
  if (a.kind !== 'vida') {
    throw new CttaError(`${shownManifest} lists adapters of unknown kind ${quote(a.kind)}`, { fix: 'this ctta version knows "vida" adapters; upgrade ctta' });
  }
  const file = await fileInside(root, a.file, shownManifest, 'adapters file');
  const size = await regularFileSize(file, shownManifest, 'adapters file', a.file);
  const expected = a.tensors.reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1) * 4, 0);
  if (size !== expected) {
    throw new CttaError(`${shownManifest}: adapters file ${quote(a.file)} holds ${size} bytes but its tensors need ${expected}`, {
      fix: 'the file is truncated or from another checkpoint: restore it or re-run the command in the manifest',
    });
  }
  const bytes = await readInside(file, shownManifest, 'adapters file', a.file);
  if (sha256(bytes) !== a.sha256) {
    throw new CttaError(`adapter weights ${quote(a.file)} in ${dirname(shownManifest)} do not match the sha256 in manifest.json`, {
      fix: 'restore them (git checkout) or re-run the command in the manifest',
    });
  }
  return bytes;
}

function attachAdapters(network: Network, a: NonNullable<ModelManifest['adapters']>, bytes: Uint8Array): void {
  const floats = new Float32Array(Uint8Array.from(bytes).buffer); // copy: file buffers need not be 4-byte aligned
  const weights = new Map<string, tf.Tensor>();
  let offset = 0;
  try {
    for (const t of a.tensors) {
      const size = t.shape.reduce((x, y) => x * y, 1);
      weights.set(t.name, tf.tensor(floats.slice(offset, offset + size), t.shape));
      offset += size;
    }
    VidaAdapters.fromWeights(network, a.options as VidaAdapterOptions, weights).attach(network);
  } finally {
    tf.dispose([...weights.values()]);
  }
}

function bytesPerElement(dtype: string): number {
  if (dtype === 'float32' || dtype === 'int32') return 4;
  if (dtype === 'bool' || dtype === 'uint8') return 1;
  if (dtype === 'float16' || dtype === 'uint16') return 2;
  return 4;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
