/**
 * ACIL (Zhuang et al., "ACIL: Analytic Class-Incremental Learning with Absolute Memorization and
 * Privacy Protection", NeurIPS 2022; code: ZHUANGHP/Analytic-continual-learning, `ACIL.py` and
 * `RecursiveLinear` in `AnalyticLinear.py`), run online.
 *
 * Frozen backbone features f -> X = relu(f W_b) (fixed random buffer layer, ./buffer-layer.ts)
 * -> ridge classifier W fitted by recursive least squares on each labelled batch
 * (./recursive-ridge.ts). W is at every moment the ridge solution over all data seen so far, so
 * the stream's batch size and order do not change the predictions ("absolute memorization"),
 * and nothing is forgotten.
 *
 * Assumptions and choices:
 * - The backbone is the scenario's pretrained network, frozen, BatchNorm on its running
 *   statistics. The authors first train the backbone on a base phase (half of the classes) with
 *   back-propagation, then fit the analytic head on the base phase again; here the backbone
 *   comes pretrained and every class, base classes included, is learned from the stream.
 * - Float64 throughout; gamma 0.1 (the authors' value on CIFAR-100 and ImageNet-1k). Buffer
 *   width 2048 by default rather than their 8192 (CIFAR-100) or 16384 (ImageNet-1k): R is 8 d^2
 *   bytes (32 MiB at 2048, 512 MiB at 8192, 2 GiB at 16384) and a fitted row costs about
 *   1.5 d^2 multiply-adds in plain JavaScript. The CIFAR-100 defaults row restores 8192; the
 *   ImageNet width is not taken (too large here), so no ImageNet row.
 * - The prediction is the ridge score (no softmax in the authors' code; argmax of X W). Here a
 *   softmax at `temperature` over the seen classes turns it into probabilities, with 0 for
 *   classes never seen and 1/K for every class before the first label.
 * - The projection is seeded by the run's seed only (shared with AEF-OCL and DS-AL).
 */
import { z } from 'zod';
import { registerMethod } from '../registry.js';
import { type AnalyticOptions, AnalyticMethod, type AnalyticBatch, type ScoreCall, ANALYTIC_DEFAULTS, analyticOptionShape } from './analytic-method.js';
import { type Matrix, RecursiveRidge } from './recursive-ridge.js';

export const acilOptions = z.strictObject({ ...analyticOptionShape });
export type AcilOptions = z.output<typeof acilOptions>;

/** ACIL; AEF-OCL extends it with class balancing. */
export class AcilMethod<O extends AnalyticOptions = AcilOptions> extends AnalyticMethod<O> {
  /** The ridge classifier on relu(f W_b). */
  protected ridgeModel!: RecursiveRidge;

  constructor(options: O, name = 'acil') {
    super(name, options);
  }

  /** The ridge classifier (for inspection: its `snapshot()` copies R and W). */
  get ridge(): RecursiveRidge {
    return this.ridgeModel;
  }

  protected override fitBatch(batch: AnalyticBatch): void {
    this.ridgeModel.fit(this.projection.apply(batch.features), batch.targets);
  }

  protected override scores(features: Matrix, _call?: ScoreCall): Matrix {
    return this.ridgeModel.predict(this.projection.apply(features));
  }

  protected override clearState(): void {
    // A fresh R is I / gamma: resetting the existing ridge spares reallocating 8 d^2 bytes.
    if (this.ridgeModel) this.ridgeModel.reset();
    else this.ridgeModel = new RecursiveRidge({ dim: this.options.bufferSize, gamma: this.options.gamma });
  }

  protected override ridgeBytes(): number {
    return this.ridgeModel.stateBytes();
  }
}

registerMethod({
  name: 'acil',
  description: 'ACIL: frozen backbone + random ReLU buffer layer + ridge classifier fitted by recursive least squares on labelled batches (exact for any batch size)',
  usesLabels: true,
  options: acilOptions,
  defaults: ANALYTIC_DEFAULTS,
  create: (o) => new AcilMethod(o),
});
