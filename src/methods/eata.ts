/**
 * EATA (Niu et al., "Efficient Test-Time Model Adaptation without Forgetting", ICML 2022).
 *
 * Like TENT, BatchNorm normalises with the current batch's statistics and only the norm affine
 * parameters (gamma, beta) are trained by entropy minimisation, one SGD step per batch. EATA
 * changes which samples drive the step and adds an anchor to the source weights:
 *
 * - Reliable samples: only samples with entropy H < E0 (`eMargin`, 0.4 ln K) contribute.
 * - Non-redundant samples: of those, a sample is dropped when the cosine similarity between its
 *   softmax and the moving average of the softmax of previously selected samples is >= `dMargin`.
 *   The moving average starts empty (no redundancy filter on the first batch that selects
 *   anything), is set to the mean probability of the selected samples, then updated as
 *   0.9 * average + 0.1 * mean(selected probabilities) after each batch that selects a sample.
 * - Re-weighting: each selected sample's entropy is weighted by 1 / exp(H - E0) (a constant,
 *   not differentiated); the loss is the mean over the selected samples.
 * - Anti-forgetting: `fisherAlpha * sum_i F_i (theta_i - theta0_i)^2` with F the diagonal Fisher
 *   information of the trained parameters, computed once at init on `fisherSize` clean images:
 *   per batch of `fisherBatchSize`, the gradient of the batch-mean cross-entropy against the
 *   model's own argmax pseudo-labels, squared, then averaged over the batches (as the authors'
 *   main.py does). theta0 = the source values. `fisherAlpha: 0` gives ETA (no clean images needed).
 * - A batch that selects no sample takes no optimiser step at all (not even the regulariser's).
 *
 * The forward pass over the whole batch gives both the prediction (returned, pre-update) and the
 * loss; unselected samples enter the gradient with weight 0 (the authors' "version 1": one
 * forward and one backward over the full batch, so BN statistics come from the whole batch).
 *
 * `reset()` clears the probability average too (the interface's "state right after init"); the
 * authors' reset reloads only model and optimizer, which is what `episodic` does here.
 *
 * Defaults per scenario family follow the paper: CIFAR-10 (`small`) SGD lr 0.005, epsilon 0.4,
 * beta 1; ImageNet SGD lr 0.00025, epsilon 0.05, beta 2000 (the authors' main.py defaults);
 * momentum 0.9 in both; 2000 Fisher images in batches of 64.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { CttaError } from '../errors.js';
import type { Network } from '../models/network.js';
import { WeightSnapshot } from '../models/snapshot.js';
import { createOptimizer, disposeOptimizer } from '../training/optimizer.js';
import { FAMILY_DEFAULTS } from './family-defaults.js';
import { registerMethod } from './registry.js';
import type { AdaptationMethod, MethodContext } from './types.js';

export const eataOptions = z.strictObject({
  /** SGD learning rate. Default per family: 0.005 (small, the paper's CIFAR-10) / 0.00025 (imagenet). */
  lr: z.number().positive().optional(),
  /** SGD momentum. */
  momentum: z.number().min(0).max(1).default(0.9),
  /** Entropy margin E0 in nats; default 0.4 * ln(numClasses). */
  eMargin: z.number().positive().optional(),
  /** Redundancy threshold epsilon on the cosine similarity. Default 0.4 (small) / 0.05 (imagenet). */
  dMargin: z.number().min(0).optional(),
  /** Weight beta of the Fisher regulariser; 0 = ETA. Default 1 (small) / 2000 (imagenet). */
  fisherAlpha: z.number().min(0).optional(),
  /** Clean images used for the Fisher information. */
  fisherSize: z.number().int().positive().default(2000),
  /** Batch size of the Fisher pass (the authors use the test batch size, 64). */
  fisherBatchSize: z.number().int().min(2).default(64),
  /** Reset model and optimizer before every batch (the probability average is kept, as in the authors' code). */
  episodic: z.boolean().default(false),
});

export type EataOptions = z.output<typeof eataOptions>;

/** Shannon entropy of softmax(logits) per sample, [N], computed stably from log-softmax. */
export function sampleEntropies(logits: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1)) as tf.Tensor1D;
  });
}

export interface EataSelection {
  /** Per sample: 1 / exp(H - E0) if selected, else 0. The loss is sum(weights * H) / selected. */
  weights: Float32Array;
  /** Samples with H < E0. */
  reliable: number;
  /** Reliable samples that also passed the redundancy filter. */
  selected: number;
  /** The moving average of probabilities after this batch (null while nothing was ever selected). */
  average: Float32Array | null;
}

/**
 * EATA's sample selection and weighting for one batch (pure: does not change `average`).
 * `entropies` [N], `probs` [N * K] row-major softmax, `average` [K] or null.
 */
export function eataSampleWeights(
  entropies: ArrayLike<number>,
  probs: ArrayLike<number>,
  numClasses: number,
  eMargin: number,
  dMargin: number,
  average: Float32Array | null,
): EataSelection {
  const n = entropies.length;
  const k = numClasses;
  if (probs.length !== n * k) throw new Error(`eataSampleWeights: ${probs.length} probabilities for ${n} samples x ${k} classes`);
  const weights = new Float32Array(n);
  const sum = new Float64Array(k);
  let reliable = 0;
  let selected = 0;
  let averageNorm = 0;
  if (average) for (let c = 0; c < k; c++) averageNorm += average[c]! * average[c]!;
  averageNorm = Math.max(Math.sqrt(averageNorm), 1e-8);
  for (let i = 0; i < n; i++) {
    const h = entropies[i]!;
    if (!(h < eMargin)) continue;
    reliable++;
    if (average) {
      let dot = 0;
      let norm = 0;
      for (let c = 0; c < k; c++) {
        const p = probs[i * k + c]!;
        dot += p * average[c]!;
        norm += p * p;
      }
      const cosine = dot / (Math.max(Math.sqrt(norm), 1e-8) * averageNorm);
      if (!(Math.abs(cosine) < dMargin)) continue;
    }
    selected++;
    weights[i] = Math.exp(eMargin - h);
    for (let c = 0; c < k; c++) sum[c] += probs[i * k + c]!;
  }
  let next = average;
  if (selected > 0) {
    next = new Float32Array(k);
    for (let c = 0; c < k; c++) {
      const mean = sum[c]! / selected;
      next[c] = average ? 0.9 * average[c]! + 0.1 * mean : mean;
    }
  }
  return { weights, reliable, selected, average: next };
}

/** `alpha * sum_i sum(F_i * (p_i - anchor_i)^2)`, differentiable in `params`. */
export function fisherPenalty(params: tf.Variable[], fisher: tf.Tensor[], anchor: tf.Tensor[], alpha: number): tf.Scalar {
  return tf.tidy(() => {
    const terms = params.map((p, i) => tf.sum(tf.mul(fisher[i]!, tf.square(tf.sub(p, anchor[i]!)))));
    return tf.mul(tf.addN(terms), alpha) as tf.Scalar;
  });
}

/**
 * Diagonal Fisher information of `params` as EATA's main.py estimates it: for each batch of
 * `batchSize` images, the gradient of the batch-mean cross-entropy against the argmax
 * pseudo-labels of the same forward pass, squared; summed over batches and divided by the
 * number of batches. Returns one tensor per parameter (the caller disposes them).
 */
export function fisherInformation(network: Network, params: tf.Variable[], images: tf.Tensor4D, batchSize: number): tf.Tensor[] {
  const n = images.shape[0];
  if (n === 0) throw new CttaError('EATA: no clean images to estimate the Fisher information', { fix: 'set fisherSize > 0 or fisherAlpha: 0' });
  let sums = params.map((p) => tf.zerosLike(p) as tf.Tensor);
  let batches = 0;
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const xb = tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]);
    const { value, grads } = tf.variableGrads(() => {
      const logits = network.logits(xb);
      const labels = tf.tidy(() => tf.argMax(logits, 1).dataSync() as Int32Array);
      // Pseudo-labels enter as constants: built from the values, not from the logits tensor.
      const target = tf.oneHot(tf.tensor1d(labels, 'int32'), logits.shape[1]);
      return tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1))) as tf.Scalar;
    }, params);
    const next = tf.tidy(() => params.map((p, i) => tf.add(sums[i]!, tf.square(grads[p.name]!))));
    tf.dispose([xb, value, ...Object.values(grads), ...sums]);
    sums = next;
    batches++;
  }
  const fisher = tf.tidy(() => sums.map((s) => tf.div(s, batches)));
  tf.dispose(sums);
  return fisher;
}

interface Pending {
  grads: tf.NamedTensorMap;
  selection: EataSelection;
}

export class EataMethod implements AdaptationMethod {
  readonly name = 'eata';
  readonly usesLabels = false;
  private network!: Network;
  private numClasses = 0;
  private params: tf.Variable[] = [];
  private source?: WeightSnapshot;
  private optimizer?: tf.Optimizer;
  private pending?: Pending;
  private fisher: tf.Tensor[] = [];
  private anchor: tf.Tensor[] = [];
  private average: Float32Array | null = null;
  private settings!: { lr: number; eMargin: number; dMargin: number; fisherAlpha: number };
  /** Running counts, as the authors log them: batches seen, reliable and selected samples, optimiser steps. */
  readonly counts = { batches: 0, reliable: 0, selected: 0, steps: 0 };

  constructor(readonly options: EataOptions) {}

  async init(ctx: MethodContext): Promise<void> {
    const o = this.options;
    const defaults = FAMILY_DEFAULTS.eata![ctx.family] as { lr: number; dMargin: number; fisherAlpha: number };
    this.network = ctx.network;
    this.numClasses = ctx.numClasses;
    this.settings = {
      lr: o.lr ?? defaults.lr,
      eMargin: o.eMargin ?? 0.4 * Math.log(ctx.numClasses),
      dMargin: o.dMargin ?? defaults.dMargin,
      fisherAlpha: o.fisherAlpha ?? defaults.fisherAlpha,
    };
    this.network.setNormStatistics('batch');
    this.params = this.network.normAffineVariables();
    if (this.params.length === 0) {
      throw new CttaError('EATA trains the affine parameters of normalisation layers, and this model has none', {
        fix: 'use a model with BatchNorm/GroupNorm layers that have gamma/beta',
      });
    }
    if (this.settings.fisherAlpha > 0) {
      if (!ctx.cleanImages) {
        throw new CttaError("EATA's Fisher regulariser needs clean images of the source dataset, and this scenario provides none", {
          fix: 'pass fisherAlpha: 0 (ETA: EATA without the anti-forgetting regulariser), or use a scenario whose source has clean images',
        });
      }
      const images = await ctx.cleanImages(o.fisherSize);
      try {
        this.fisher = fisherInformation(this.network, this.params, images, o.fisherBatchSize);
      } finally {
        images.dispose();
      }
      this.anchor = this.params.map((p) => tf.keep(p.clone()));
    }
    this.source = new WeightSnapshot(this.network);
    this.optimizer = this.newOptimizer();
  }

  /** The options after per-family defaults (for logs and tests). */
  get resolved(): Readonly<{ lr: number; eMargin: number; dMargin: number; fisherAlpha: number }> {
    return this.settings;
  }

  /** The Fisher information, one tensor per trained parameter (empty with fisherAlpha 0). Owned by the method. */
  get fisherInformation(): readonly tf.Tensor[] {
    return this.fisher;
  }

  /** Moving average of the selected samples' probabilities (null until a sample is selected). */
  get probabilityAverage(): Float32Array | null {
    return this.average ? this.average.slice() : null;
  }

  private newOptimizer(): tf.Optimizer {
    return createOptimizer('sgd', { lr: this.settings.lr, momentum: this.options.momentum });
  }

  async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    // Episodic: weights and optimizer back to the source before every batch; the probability
    // average is kept, as the authors' reset does (an explicit reset() clears it).
    if (this.options.episodic) this.restoreSource();
    this.dropPending();
    const { eMargin, dMargin, fisherAlpha } = this.settings;
    let probs: tf.Tensor2D | undefined;
    let selection: EataSelection | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const logits = this.network.logits(x);
      const p = tf.softmax(logits);
      probs = tf.keep(p);
      const entropies = sampleEntropies(logits);
      // The selection is a decision on values: its weights are constants in the loss.
      selection = eataSampleWeights(entropies.dataSync(), p.dataSync(), this.numClasses, eMargin, dMargin, this.average);
      const weighted = tf.sum(tf.mul(entropies, tf.tensor1d(selection.weights)));
      let loss = tf.div(weighted, Math.max(selection.selected, 1)) as tf.Scalar;
      if (fisherAlpha > 0) loss = tf.add(loss, fisherPenalty(this.params, this.fisher, this.anchor, fisherAlpha));
      return loss;
    }, this.params);
    value.dispose();
    this.pending = { grads, selection: selection! };
    return probs!;
  }

  async adapt(): Promise<void> {
    if (!this.pending) return;
    const { grads, selection } = this.pending;
    this.counts.batches++;
    this.counts.reliable += selection.reliable;
    this.counts.selected += selection.selected;
    if (selection.selected > 0) {
      this.optimizer!.applyGradients(grads);
      this.counts.steps++;
    }
    this.average = selection.average;
    this.dropPending();
  }

  stateBytes(): number {
    const trained = this.params.reduce((s, p) => s + p.size * 4, 0);
    const fisher = this.fisher.length > 0 ? 2 * trained : 0; // F and theta0
    const momentum = this.options.momentum > 0 ? trained : 0;
    return (this.source?.bytes() ?? 0) + fisher + momentum + this.numClasses * 4;
  }

  async reset(): Promise<void> {
    this.restoreSource();
    this.average = null;
  }

  private restoreSource(): void {
    this.dropPending();
    this.source?.restore(this.network);
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = this.newOptimizer();
  }

  dispose(): void {
    this.dropPending();
    this.source?.dispose();
    this.source = undefined;
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = undefined;
    tf.dispose([...this.fisher, ...this.anchor]);
    this.fisher = [];
    this.anchor = [];
  }

  private dropPending(): void {
    if (this.pending) tf.dispose(Object.values(this.pending.grads));
    this.pending = undefined;
  }
}

registerMethod({
  name: 'eata',
  description: 'EATA: entropy minimisation on reliable, non-redundant samples (re-weighted), BN gamma/beta, Fisher anti-forgetting regulariser (fisherAlpha 0 = ETA)',
  usesLabels: false,
  options: eataOptions,
  create: (o) => new EataMethod(o),
});
