/**
 * Checkpoints in the standard tfjs LayersModel format (model.json + weights.bin, loadable by
 * `tf.loadLayersModel` in a browser too) plus a `manifest.json` that makes a shipped model
 * self-describing: architecture, dataset, classes, clean accuracy, the sha256 of its weights and
 * the exact command that reproduces it.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CttaError } from '../errors.js';
import { ensureOutputDir } from '../util/output-dir.js';
import { Network } from './network.js';
import { VidaAdapters, type VidaAdapterOptions } from './adapters/vida.js';
// Registers the GroupNorm layer class so that GN models deserialize.
import './layers/group-norm.js';

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
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
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

async function readJson<T>(path: string, what: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new CttaError(`${what} not found: ${path}`, { fix: 'check the path (a model directory holds model.json and weights)' });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new CttaError(`${what} ${path} is not valid JSON (${(err as Error).message})`, { fix: 'restore the file from the repository or re-create the model' });
  }
}

/**
 * Loads a ctta checkpoint directory, or any tfjs LayersModel (`model.json` path or its directory),
 * and splits it at the penultimate layer.
 */
export async function loadModel(path: string): Promise<LoadedModel> {
  const full = resolve(path);
  const isDir = await stat(full).then((s) => s.isDirectory(), () => {
    throw new CttaError(`model not found: ${path}`, { fix: 'pass a checkpoint directory (e.g. models/fmnist-resnet8) or a model.json file' });
  });
  const dir = isDir ? full : dirname(full);
  const modelJsonPath = isDir ? join(dir, 'model.json') : full;
  const modelJson = await readJson<{ modelTopology?: unknown; weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] }>(modelJsonPath, 'model file');
  if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
    throw new CttaError(`${modelJsonPath} is not a tfjs LayersModel (no modelTopology/weightsManifest)`, {
      fix: 'convert the model with tensorflowjs_converter --output_format tfjs_layers_model',
    });
  }
  const manifestPath = join(dir, 'manifest.json');
  const manifest = await stat(manifestPath).then(() => readJson<ModelManifest>(manifestPath, 'manifest'), () => undefined);

  const buffers: Uint8Array[] = [];
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) {
      const file = join(dir, p);
      buffers.push(await readFile(file).catch(() => {
        throw new CttaError(`weights file missing: ${file}`, { fix: 'restore the model directory (model.json lists it)' });
      }));
    }
    weightSpecs.push(...group.weights);
  }
  const weightData = concat(buffers);
  const expectedBytes = weightSpecs.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1) * bytesPerElement(w.dtype), 0);
  const quantized = weightSpecs.some((w) => w.quantization !== undefined);
  if (!quantized && weightData.byteLength !== expectedBytes) {
    throw new CttaError(`weights of ${modelJsonPath} hold ${weightData.byteLength} bytes but model.json declares ${expectedBytes}`, {
      fix: 'the weights file is truncated or from another model: restore it',
    });
  }
  if (manifest && manifest.weightsSha256 !== sha256(weightData)) {
    throw new CttaError(`weights in ${dir} do not match the sha256 in manifest.json`, {
      fix: 'the weights were modified or corrupted: restore them (git checkout) or re-run the command in the manifest',
    });
  }
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: modelJson.modelTopology as object, weightSpecs, weightData: weightData.buffer as ArrayBuffer }),
  );
  const spec = manifest
    ? { architecture: manifest.architecture, options: manifest.options }
    : { architecture: 'layers-model', options: { source: modelJsonPath } };
  const network = new Network(model, spec);
  if (manifest?.adapters) {
    try {
      await loadAdapters(network, dir, manifest.adapters);
    } catch (err) {
      network.dispose();
      throw err;
    }
  }
  return { network, manifest, dir };
}

async function loadAdapters(network: Network, dir: string, a: NonNullable<ModelManifest['adapters']>): Promise<void> {
  if (a.kind !== 'vida') {
    throw new CttaError(`${dir}/manifest.json lists adapters of unknown kind "${a.kind}"`, { fix: 'this ctta version knows "vida" adapters; upgrade ctta' });
  }
  const file = join(dir, a.file);
  const bytes = await readFile(file).catch(() => {
    throw new CttaError(`adapter weights missing: ${file}`, { fix: 'restore the model directory, or re-run the command in its manifest' });
  });
  if (sha256(bytes) !== a.sha256) {
    throw new CttaError(`adapter weights ${file} do not match the sha256 in manifest.json`, { fix: 'restore them (git checkout) or re-run the command in the manifest' });
  }
  const floats = new Float32Array(Uint8Array.from(bytes).buffer); // copy: file buffers need not be 4-byte aligned
  const weights = new Map<string, tf.Tensor>();
  let offset = 0;
  for (const t of a.tensors) {
    const size = t.shape.reduce((x, y) => x * y, 1);
    weights.set(t.name, tf.tensor(floats.slice(offset, offset + size), t.shape));
    offset += size;
  }
  try {
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
