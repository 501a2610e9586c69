/**
 * Setting up one run: the stream, the model, the method with its options resolved for the
 * scenario's dataset, the label space, the method's context, and the result header. Everything
 * that can fail on bad input fails here, before a result file is opened.
 */
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../backend/index.js';
import { CttaError } from '../errors.js';
import { loadModel, type ModelManifest } from '../models/checkpoint.js';
import type { Network } from '../models/network.js';
import { buildScratchModel, describeModel, isScratch } from '../models/scenario-model.js';
import { createMethod } from '../methods/index.js';
import type { AdaptationMethod, MethodContext } from '../methods/types.js';
import { cleanImageSource } from '../streams/clean-images.js';
import { datasetDefaultsKey } from '../streams/datasets/index.js';
import { resolveModelPath, type Scenario } from '../streams/scenario.js';
import { openStream, type Stream } from '../streams/stream.js';
import { Rng } from '../util/rng.js';
import { packageVersion } from '../util/version.js';
import { loadCompanion } from './companions.js';
import { LabelSpace } from './label-space.js';
import { checkBatchFits } from './memory-check.js';
import { RESULTS_FORMAT, type RunHeader } from './records.js';

export interface RunSpec {
  scenario: Scenario;
  method: string;
  methodOptions?: Record<string, unknown>;
  /** Name of this variant in folders and tables (default: the method's name). */
  label?: string;
  seed: number;
  dataDir?: string;
  /** Told what the method's set-up is doing (MethodContext.status). */
  onStatus?: (text: string) => void;
}

/** Everything a run needs; `dispose` frees the method, the network and the label space. `labels` maps the method's output columns to the dataset's classes. */
export interface OpenRun {
  stream: Stream;
  network: Network;
  method: AdaptationMethod;
  labels: LabelSpace;
  header: RunHeader;
  label: string;
  dispose(): void;
}

/**
 * The dataset class of each head output, after checking that the model fits the data: a manifest
 * naming the classes (or, without one, a head of exactly K outputs), class names that agree with
 * the dataset's, and a head over all K classes unless the scenario declares
 * `"modelClasses": "subset"`.
 */
export function checkModelFitsData(scenario: Scenario, manifest: ModelManifest | undefined, headSize: number, classNames: readonly string[]): number[] {
  const where = `model ${describeModel(scenario.model)}`;
  const numClasses = classNames.length;
  if (!manifest && headSize !== numClasses) {
    throw new CttaError(`${where} has ${headSize} outputs but ${scenario.dataset} has ${numClasses} classes, and no manifest.json says which classes the outputs are`, {
      fix: 'use a model trained on this dataset, or add a manifest.json with its "classes"',
    });
  }
  const headClasses = manifest?.classes ?? Array.from({ length: headSize }, (_, i) => i);
  LabelSpace.check(headClasses, headSize, numClasses, where);
  const names = manifest?.classNames;
  if (names && names.length === headClasses.length) {
    const k = headClasses.findIndex((c, i) => names[i] !== classNames[c]);
    if (k >= 0) {
      throw new CttaError(`${where}: output ${k} is class "${names[k]}" in its manifest, but class ${headClasses[k]} of ${scenario.dataset} is "${classNames[headClasses[k]!]}"`, {
        fix: 'use a model trained on this dataset (its manifest\'s classNames must match the dataset\'s)',
      });
    }
  }
  if (headClasses.length < numClasses && scenario.modelClasses !== 'subset') {
    throw new CttaError(`${scenario.file}: ${where} predicts only ${headClasses.length} of the ${numClasses} classes of ${scenario.dataset}`, {
      fix: 'use a model trained on all classes, or add "modelClasses": "subset" to the scenario if a class-subset model is what you want',
    });
  }
  return headClasses;
}

/**
 * The run's network: the scenario's checkpoint, or its zoo architecture freshly initialised for
 * the stream's images, the dataset's classes and the run's seed. `modelPath` is the checkpoint's
 * (companions live beside it); undefined for a scratch model.
 */
async function openScenarioModel(scenario: Scenario, stream: Stream, seed: number): Promise<{ network: Network; manifest?: ModelManifest; hash: string; modelPath?: string }> {
  if (isScratch(scenario.model)) {
    const { height, width, channels, classNames } = stream.source;
    return buildScratchModel(scenario.model, { inputShape: [height, width, channels], numClasses: classNames.length, seed });
  }
  const modelPath = resolveModelPath(scenario.model, scenario.file);
  return { ...(await loadModel(modelPath)), modelPath };
}

export async function openRun(spec: RunSpec): Promise<OpenRun> {
  const { scenario, seed } = spec;
  const stream = await openStream(scenario, seed, { dataDir: spec.dataDir });
  const { network, manifest, hash: modelHash, modelPath } = await openScenarioModel(scenario, stream, seed);
  let method: AdaptationMethod | undefined;
  let labels: LabelSpace | undefined;
  const dispose = () => {
    method?.dispose();
    labels?.dispose();
    network.dispose();
  };
  try {
    const [h, w, c] = network.inputShape;
    const { height, width, channels } = stream.source;
    if (h !== height || w !== width || c !== channels) {
      throw new CttaError(`${scenario.file}: model ${describeModel(scenario.model)} takes ${h}x${w}x${c} images but the stream gives ${height}x${width}x${channels}`, { fix: 'use a model trained on this dataset' });
    }
    const backend = backendInfo()?.name ?? tf.getBackend();
    checkBatchFits(network, scenario.batchSize, backend, scenario.file);
    const numClasses = stream.source.classNames.length;
    const headClasses = checkModelFitsData(scenario, manifest, network.numClasses, stream.source.classNames);
    const dataset = datasetDefaultsKey(scenario.dataset);
    method = createMethod(spec.method, spec.methodOptions ?? {}, dataset);
    const warnings: string[] = [];
    // A head over fewer classes than the data is legitimate (a base model of a class-incremental
    // stream) only when the scenario says so; methods answering over all classes are not limited by it.
    if (method.labelSpace === 'head' && headClasses.length < numClasses) {
      warnings.push(`model ${describeModel(scenario.model)} predicts ${headClasses.length} of the ${numClasses} classes of ${scenario.dataset}: images of the other ${numClasses - headClasses.length} always count as errors for ${method.name}`);
    }
    if (scenario.limit !== undefined) {
      warnings.push(`${scenario.name} runs only its first ${scenario.limit} batch(es) (limit, --limit): a quick check, not the scenario's numbers`);
    }
    // A method answering over all K classes itself needs no mapping: its columns are the classes.
    labels = new LabelSpace(method.labelSpace === 'head' ? headClasses : Array.from({ length: numClasses }, (_, i) => i), numClasses);
    const label = spec.label ?? method.name;
    const header: RunHeader = {
      type: 'header',
      format: RESULTS_FORMAT,
      scenario: scenario.name,
      scenarioHash: scenario.hash,
      method: method.name,
      ...(label !== method.name ? { label } : {}),
      methodOptions: method.options,
      modelHash,
      seed,
      domains: stream.ordering.domains.map((d) => d.name),
      tasks: stream.ordering.tasks.map((t) => t.name),
      backend,
      ...((backendInfo()?.threads ?? 1) > 1 ? { threads: backendInfo()!.threads } : {}),
      versions: backendInfo()?.versions ?? {},
      ctta: packageVersion(),
      node: process.version,
      startedAt: new Date().toISOString(),
      ...(warnings.length > 0 ? { warnings } : {}),
    };
    const companions: NonNullable<RunHeader['companions']> = {};
    const ctx: MethodContext = {
      network,
      rng: Rng.derive(seed, 'method', method.name),
      seed,
      numClasses,
      headClasses,
      dataset,
      cleanImages: cleanImageSource(scenario, stream, seed, { dataDir: spec.dataDir }),
      ...(spec.onStatus ? { status: spec.onStatus } : {}),
      companion: async (kind, path) => {
        if (modelPath === undefined) {
          throw new CttaError(`${method!.name} needs a ${kind} checkpoint warmed up on the source model, and ${describeModel(scenario.model)} is trained from scratch`, {
            fix: 'use a scenario whose model is a checkpoint',
          });
        }
        const loaded = await loadCompanion(network, modelPath, kind, path);
        companions[kind] = { ...(path !== undefined ? { path } : {}), hash: loaded.hash };
        return loaded.network;
      },
    };
    await method.init(ctx);
    if (Object.keys(companions).length > 0) header.companions = companions;
    return { stream, network, method, labels, header, label, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}
