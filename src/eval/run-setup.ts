/**
 * Setting up one run: the stream, the model, the method with its options resolved for the
 * scenario's dataset, the label space, the method's context, and the result header. Everything
 * that can fail on bad input fails here, before a result file is opened.
 */
import * as tf from '@tensorflow/tfjs';
import { backendInfo } from '../backend/index.js';
import { CttaError } from '../errors.js';
import { loadModel } from '../models/checkpoint.js';
import type { Network } from '../models/network.js';
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
import { RESULTS_FORMAT, type RunHeader } from './records.js';

export interface RunSpec {
  scenario: Scenario;
  method: string;
  methodOptions?: Record<string, unknown>;
  /** Name of this variant in folders and tables (default: the method's name). */
  label?: string;
  seed: number;
  dataDir?: string;
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

export async function openRun(spec: RunSpec): Promise<OpenRun> {
  const { scenario, seed } = spec;
  const stream = await openStream(scenario, seed, { dataDir: spec.dataDir });
  const modelPath = resolveModelPath(scenario.model);
  const { network, manifest } = await loadModel(modelPath);
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
      throw new CttaError(`${scenario.file}: model ${scenario.model} takes ${h}x${w}x${c} images but the stream gives ${height}x${width}x${channels}`, { fix: 'use a model trained on this dataset' });
    }
    const numClasses = stream.source.classNames.length;
    const headClasses = manifest?.classes ?? Array.from({ length: network.numClasses }, (_, i) => i);
    LabelSpace.check(headClasses, network.numClasses, numClasses, `model ${scenario.model}`);
    const dataset = datasetDefaultsKey(scenario.dataset);
    method = createMethod(spec.method, spec.methodOptions ?? {}, dataset);
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
      seed,
      domains: stream.ordering.domains.map((d) => d.name),
      tasks: stream.ordering.tasks.map((t) => t.name),
      backend: backendInfo()?.name ?? tf.getBackend(),
      versions: backendInfo()?.versions ?? {},
      ctta: packageVersion(),
      node: process.version,
      startedAt: new Date().toISOString(),
    };
    const ctx: MethodContext = {
      network,
      rng: Rng.derive(seed, 'method', method.name),
      seed,
      numClasses,
      headClasses,
      dataset,
      cleanImages: cleanImageSource(scenario, stream, seed, { dataDir: spec.dataDir }),
      companion: (kind, path) => loadCompanion(network, modelPath, kind, path),
    };
    await method.init(ctx);
    return { stream, network, method, labels, header, label, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}
