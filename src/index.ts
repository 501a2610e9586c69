/**
 * ctta's public API: `import { ... } from 'ctta'`.
 * Grouped as the data flows: backend -> models -> data (datasets, corruptions, orderings) ->
 * training/evaluation.
 */
export { CttaError } from './errors.js';
export { Rng, hashSeed } from './util/rng.js';

// Compute backend
export { setBackend, backendInfo, parseBackendName, BACKEND_NAMES } from './backend/index.js';
export type { BackendInfo, BackendName } from './backend/index.js';
export { registerWasmKernels } from './backend/wasm-kernels.js';

// Models
export { createModel, listModels, resolveModelOptions, registerModel, commonModelOptions, isZooModel } from './models/registry.js';
export type { ModelDefinition } from './models/registry.js';
export { Registry } from './util/registry.js';
export type { RegistryOptions } from './util/registry.js';
export { loadModel, saveModel } from './models/checkpoint.js';
export type { LoadedModel, ManifestFields, ModelManifest } from './models/checkpoint.js';
export { Network } from './models/network.js';
export type { AdapterSet, ForwardResult, LayerCall, LayerHook, NetworkSpec } from './models/network.js';
export { NormLayer } from './models/norm.js';
export type { NormStatistics } from './models/norm.js';
export { GroupNormalization } from './models/layers/group-norm.js';

// Datasets and readers
export * from './streams/datasets/index.js';
export * from './streams/datasets/readers/index.js';

// Corruptions and orderings
export {
  CORRUPTIONS,
  EXTRA_CORRUPTIONS,
  SEVERITIES,
  corruptBatch,
  corruptImage,
  encodeJpeg,
  isCorruptionName,
} from './streams/corruptions/index.js';
export type { CorruptionName, Image, Severity } from './streams/corruptions/index.js';
export { registerCorruption, corruptionNames } from './streams/corruptions/index.js';
export type { CorruptionDefinition, BuiltinCorruptionName, CorruptionFn, CorruptionRng } from './streams/corruptions/index.js';
export * from './streams/orderings/index.js';

// Training and clean evaluation
export { pretrain, PRETRAIN_DEFAULTS } from './training/pretrain.js';
export type { EpochRecord, PretrainOptions, TrainProgress } from './training/pretrain.js';
export { evaluateClean } from './training/evaluate.js';
export type { CleanEvaluation } from './training/evaluate.js';
export { imageBatch } from './training/batches.js';

// Scenarios and streams
export { loadScenario, parseScenario, resolveScenarioPath, scenariosDir, SCENARIO_DATASETS, PRECORRUPTED, scenarioDatasetNames } from './streams/scenario.js';
export type { DomainSpec, Scenario, ScenarioDataset } from './streams/scenario.js';
export { openStream, planBatches, batchTensor, Stream } from './streams/stream.js';
export type { OpenStreamOptions, StreamBatch } from './streams/stream.js';
export { engineSource, openSource, loadScenarioDataset } from './streams/sources.js';
export { cleanImageSource } from './streams/clean-images.js';
export type { CleanImages } from './streams/clean-images.js';
export type { DomainImageSource, SourceOptions } from './streams/sources.js';
export { renderPreview } from './streams/preview.js';

// Methods, runner, results
export { createMethod, datasetDefaults, getMethodDefinition, listMethods, loadPlugin, registerMethod, resolveMethodOptions } from './methods/index.js';
export type { AdaptationMethod, Diagnostics, MethodContext, MethodDefinition } from './methods/index.js';
export { FrozenMethod, networkBytes, tensorBytes } from './methods/base/frozen-method.js';
export { GradientMethod, optimizerBytes } from './methods/base/gradient-method.js';
export type { Objective, OptimizerSpec } from './methods/base/gradient-method.js';
export { WeightSnapshot } from './models/snapshot.js';
export { runScenario } from './eval/runner.js';
export type { RunOptions, RunOutcome, RunProgress } from './eval/runner.js';
export { openRun } from './eval/run-setup.js';
export type { OpenRun, RunSpec } from './eval/run-setup.js';
export { LabelSpace } from './eval/label-space.js';
export { loadCompanion, companionPath } from './eval/companions.js';
export { planSweep, runSweep, shardJobs, parseShard } from './eval/sweep.js';
export type { SweepEvent, SweepJob, SweepOptions } from './eval/sweep.js';
export { CalibrationBins, matrixMetrics } from './eval/metrics.js';
export type { BatchRecord, ResultRecord, RunHeader, RunSummary } from './eval/records.js';
export { runHeaderSchema, batchRecordSchema, runSummarySchema, resultRecordSchema, RESULTS_FORMAT } from './eval/records.js';

// Reports
export { readResults } from './report/results.js';
export type { FinishedRun } from './report/results.js';
export { summarize, summarizeDiagnostics, formatMarkdown, formatCsv } from './report/table.js';
export type { TableRow } from './report/table.js';
export { plotRuns, renderSvg, renderPng } from './report/plot.js';
export { mergeResults } from './report/merge.js';
export { lame, lameAffinity, lameEnergy } from './methods/lame.js';
export type { LameOptions } from './methods/lame.js';
export { meanEntropy } from './methods/tent.js';
export { softCrossEntropy, symmetricCrossEntropy, emaUpdate, stochasticRestore } from './methods/teacher-student.js';
export { homeostaticScales, viewUncertainty } from './methods/vida.js';

// Augmentation and adapters
export { cottaAugment, drawCottaView, applyCottaView, cottaRanges } from './augment/cotta.js';
export type { CottaAugmentOptions, CottaViewParams } from './augment/cotta.js';
export { VidaAdapters, VIDA_ADAPTER_DEFAULTS, selectAdapterLayers } from './models/adapters/vida.js';
export type { VidaAdapterOptions } from './models/adapters/vida.js';
