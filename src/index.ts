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
export { cleanImageIndices, cleanImageSource } from './streams/clean-images.js';
export type { CleanImages } from './streams/clean-images.js';
export type { DomainImageSource, SourceOptions } from './streams/sources.js';
export { renderPreview } from './streams/preview.js';

// Methods, runner, results
export { createMethod, datasetDefaults, getMethodDefinition, listMethods, loadPlugin, registerMethod, resolveMethodOptions } from './methods/index.js';
export type { AdaptationMethod, Diagnostics, MethodContext, MethodDefinition } from './methods/index.js';
export { FrozenMethod, networkBytes, tensorBytes } from './methods/base/frozen-method.js';
export { GradientMethod, optimizerBytes } from './methods/base/gradient-method.js';
export type { Objective, OptimizerSpec } from './methods/base/gradient-method.js';
export { OnlineLearner } from './methods/base/online-learner.js';
export type { LabelledBatch, LearnerOptimizer } from './methods/base/online-learner.js';
export { ReplayBuffer } from './methods/replay/replay-buffer.js';
export type { ReplayBufferOptions, ReplayPolicy, ReplaySample } from './methods/replay/replay-buffer.js';
export { ErMethod, crossEntropy } from './methods/er.js';
export { OnProMethod, onproOptions } from './methods/onpro/onpro.js';
export { opeLoss, prototypeCentres } from './methods/onpro/ope.js';
export { allocatePairs, planApf, mixImages, mixupCrossEntropy } from './methods/onpro/apf.js';
export { supConLoss, supervisedNtXent } from './methods/onpro/instance-loss.js';
export { onproAugment } from './methods/onpro/augment.js';
export { rotationVariants } from './methods/onpro/rotations.js';
export { AnalyticMethod, analyticOptionShape } from './methods/analytic/analytic-method.js';
export type { AnalyticBatch, AnalyticOptions, ScoreCall } from './methods/analytic/analytic-method.js';
export { AcilMethod, acilOptions } from './methods/analytic/acil.js';
export type { AcilOptions } from './methods/analytic/acil.js';
export { AefOclMethod, aefOclOptions } from './methods/analytic/aef-ocl.js';
export type { AefOclOptions } from './methods/analytic/aef-ocl.js';
export { DsAlMethod, dsAlOptions } from './methods/analytic/ds-al.js';
export type { DsAlOptions } from './methods/analytic/ds-al.js';
export { RecursiveRidge } from './methods/analytic/recursive-ridge.js';
/** Area under the ROC curve of two score samples (EAR's OOD diagnostic; ties count one half). */
export { auroc } from './methods/ear/auroc.js';
export type { Matrix as RidgeMatrix, MatrixInput as RidgeMatrixInput, RecursiveRidgeOptions, RidgeSnapshot } from './methods/analytic/recursive-ridge.js';
export { choleskyFactor, choleskySolve, solveWithFactor } from './methods/analytic/cholesky.js';
export { BufferLayer } from './methods/analytic/buffer-layer.js';
export type { Activation, BufferLayerOptions } from './methods/analytic/buffer-layer.js';
export { FeatureStats } from './methods/analytic/feature-stats.js';
export { WeightSnapshot } from './models/snapshot.js';
export { buildScratchModel, scratchModelHash, describeModel } from './models/scenario-model.js';
export type { ModelRef, ScratchModel } from './models/scenario-model.js';
export { runScenario } from './eval/runner.js';
export type { RunOptions, RunOutcome, RunProgress } from './eval/runner.js';
export { openRun } from './eval/run-setup.js';
export type { OpenRun, RunSpec } from './eval/run-setup.js';
export { LabelSpace } from './eval/label-space.js';
export { loadCompanion, companionPath } from './eval/companions.js';
export { planSweep, runSweep, shardJobs, parseShard } from './eval/sweep.js';
export type { SweepEvent, SweepJob, SweepOptions } from './eval/sweep.js';
export { CalibrationBins, matrixMetrics, pooledAccuracy } from './eval/metrics.js';
export type { BatchRecord, ResultRecord, RunHeader, RunSummary } from './eval/records.js';
export { runHeaderSchema, batchRecordSchema, runSummarySchema, resultRecordSchema, RESULTS_FORMAT } from './eval/records.js';

// Reports
export { readResults } from './report/results.js';
export type { FinishedRun } from './report/results.js';
export { summarize, summarizeDiagnostics, formatMarkdown, formatCsv, TABLE_LAYOUTS } from './report/table.js';
export type { TableLayout } from './report/table.js';
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
