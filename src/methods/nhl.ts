/**
 * NHL (Tang et al., "Neuro-Modulated Hebbian Learning for Fully Test-Time Adaptation", CVPR 2023,
 * arXiv 2303.00914): fully test-time adaptation, no labels.
 *
 * Per stream batch, in `predict` and before the batch's prediction (as the paper's Fig. 2
 * caption says: "the first convolution layer of the source model is finetuned by Hebbian
 * learning rule and the neuromodulator is further fine-tuned by the entropy loss before making a
 * prediction given each mini-batch testing sample"; the classifier is locked):
 *  1. Soft Hebbian learning: one SoftHebb step on the kernel of the first Conv2D from the
 *     unlabeled batch (./nhl/soft-hebb.ts: softmax competition over channels, dW = y*x - (y*u)*W
 *     normalised by its max |.|). No labels, no loss, no gradient.
 *  2. Neuro-modulator: one optimizer step on the mean prediction entropy of the batch (as TENT),
 *     on the modulator's parameters only (./nhl/layers.ts).
 *  3. The prediction: the network after both updates, on the same batch.
 * `adapt` does nothing (everything happened in `predict`, from the unlabeled batch only); the
 * base's `evaluate` runs the network as it is and changes nothing. Every other weight (the rest
 * of the backbone, the head, running statistics) stays bit-identical.
 *
 * Diagnostics per batch: `entropy` (the batch's mean entropy right before the modulator's step)
 * and `kernelDrift` (||W - W_source|| / ||W_source|| of the Hebbian kernel).
 *
 * What we read: the paper's abstract and the opening of its introduction (arXiv 2303.00914,
 * ar5iv page) and the caption of its Fig. 2 (the overview above, quoted by a review page); the
 * method section's equations and the implementation details were not readable to us. The rule
 * of step 1 is SoftHebb's code (NeuromorphicComputing/SoftHebb, `hebbconv.py`: HebbSoftConv2d,
 * HebbHardConv2d.delta_weight; `utils.py`: activation), the closest readable implementation of
 * "soft competitive Hebbian learning" (its authors include NHL's co-author Q. Guo).
 *
 * Assumptions (paper vs our choice):
 *  - Hebbian rule: the paper states a soft (softmax) competitive Hebbian rule; we use SoftHebb's
 *    code exactly (Lebesgue p = 2, sums over batch and positions, max-normalised step), an
 *    assumption. No Krotov anti-Hebbian term, no bias rule; a conv bias stays as it is.
 *  - Hebbian layer: "the first convolution layer": the first Conv2D of the forward pass, its
 *    source weights as the starting point.
 *  - Neuro-modulator: the paper's "neuro-modulator layer" after the Hebbian layer; we use the
 *    affine parameters (gamma, beta) of the first norm layer after that conv (ResNet-8:
 *    `stem_norm`): a per-channel re-weighting of the Hebbian layer's responses, trained by back-
 *    propagation of the entropy. No new layer is added.
 *  - Classifier: "fixed": everything but the two parts above, including all other norm affines.
 *  - Norm statistics: batch statistics in every BatchNorm (`normStatistics: 'batch'`, the fully
 *    test-time setting of TENT the paper compares with); 'running' is offered.
 *  - Order and steps: Hebbian step, then one modulator step, then predict (one step each).
 *  - Rates: the paper's values were not readable. Modulator: TENT's (Adam 1e-3 on small images,
 *    SGD 2.5e-4 momentum 0.9 on ImageNet). Hebbian: `hebbianLr` 1e-3 (the largest change of any
 *    kernel element per batch; small because the kernel is pretrained, unlike SoftHebb's 0.08
 *    from scratch) and inverse temperature 10, not SoftHebb's first-layer 1: the shipped
 *    ResNet-8's stem responses span ~0.8 across its 16 channels, so with 1 the softmax is almost
 *    uniform (mean top probability 0.10) and every kernel moves towards the same mean patch,
 *    while 10 gives a real soft competition (0.46). Measured on Fashion-MNIST-C, severity 5,
 *    512 images per corruption, seed 0: with beta 10 and lr 1e-3 or 3e-3 the mean error stays
 *    within 0.3 points of the modulator-only ablation (`hebbianLr: 0`) on 9 corruptions; with
 *    beta 1 it rose by 2.2 (lr 1e-3) and 12.3 (lr 1e-2) points on gaussian noise, fog, contrast.
 *  - No episodic reset and no stochastic restore (none is described); `reset()` returns to the
 *    source weights as for every method.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { NormLayer } from '../models/norm.js';
import { GradientMethod, type Objective, type OptimizerSpec } from './base/gradient-method.js';
import { findHebbianLayer, findModulator, hebbianInput, type HebbianLayer } from './nhl/layers.js';
import { softHebbStep } from './nhl/soft-hebb.js';
import { registerMethod } from './registry.js';
import { meanEntropy, TENT_DATASET_DEFAULTS } from './tent.js';

export const nhlOptions = z.strictObject({
  /** Largest change of a kernel element per batch (the step is max-normalised); 0 = no Hebbian learning. */
  hebbianLr: z.number().min(0).default(1e-3),
  /** Inverse temperature of the softmax competition between channels (SoftHebb's t_invert). */
  invTemperature: z.number().positive().default(10),
  /** The modulator's optimizer and rate (per dataset, see `defaults`). */
  optimizer: z.enum(['adam', 'sgd']).default('adam'),
  lr: z.number().positive().default(1e-3),
  /** SGD momentum and Nesterov (TENT's ImageNet setting: 0.9, no Nesterov). */
  momentum: z.number().min(0).max(1).default(0.9),
  nesterov: z.boolean().default(false),
  /** BatchNorm statistics: the batch's (fully test-time, as TENT) or the stored ones. */
  normStatistics: z.enum(['batch', 'running']).default('batch'),
});
export type NhlOptions = z.output<typeof nhlOptions>;

/** ||a - b|| / ||b|| (how far the Hebbian kernel has moved from the source one). */
function relativeDistance(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.div(tf.norm(tf.sub(a, b)), tf.add(tf.norm(b), 1e-12)).dataSync()[0]!);
}

export class NhlMethod extends GradientMethod<NhlOptions> {
  private hebbian!: HebbianLayer;
  private modulator!: NormLayer;

  constructor(options: NhlOptions) {
    super('nhl', options);
  }

  protected override async setup(): Promise<void> {
    this.network.setNormStatistics(this.options.normStatistics);
    this.hebbian = findHebbianLayer(this.network);
    this.modulator = findModulator(this.network, this.hebbian.layer);
  }

  /** The parts NHL changes (inspection, tests): the Hebbian conv kernel and the modulator's norm layer. */
  get adapted(): { kernel: string; modulator: string } {
    return { kernel: this.hebbian.kernelName, modulator: this.modulator.name };
  }

  /** Only the modulator is trained by gradient; the Hebbian kernel has its own rule. */
  protected trainable(): tf.Variable[] {
    return this.modulator.affineVariables();
  }

  protected optimizers(): OptimizerSpec {
    const { optimizer: kind, lr, momentum, nesterov } = this.options;
    return { kind, lr, momentum, nesterov };
  }

  /** The modulator's loss: the batch's mean prediction entropy (`output` uses the loss only). */
  protected objective(x: tf.Tensor4D): Objective {
    const logits = this.network.logits(x);
    return { loss: meanEntropy(logits), prediction: tf.softmax(logits) };
  }

  /** Hebbian step, modulator step, then the prediction of the updated network (see the header). */
  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const input = hebbianInput(this.network, this.hebbian, x);
    try {
      softHebbStep(this.hebbian.kernel, input, this.hebbian.geometry, this.options.invTemperature, this.options.hebbianLr);
    } finally {
      input.dispose();
    }
    // variableGrads runs the objective in a tidy: only the loss (and the gradients) survive it.
    const { value, grads } = tf.variableGrads(() => this.objective(x).loss, this.params);
    try {
      this.step(grads);
      this.diagnose('entropy', (await value.data())[0]!);
    } finally {
      tf.dispose([value, ...Object.values(grads)]);
    }
    this.diagnose('kernelDrift', relativeDistance(this.hebbian.kernel, this.source!.get(this.hebbian.kernelName)!));
    return tf.tidy(() => tf.softmax(this.network.logits(x)));
  }
}

registerMethod({
  name: 'nhl',
  description: 'NHL: before each prediction, a soft Hebbian (SoftHebb) step on the first conv and one entropy step on the norm affine after it; the rest frozen',
  usesLabels: false,
  options: nhlOptions,
  // The modulator's rates: TENT's (the paper's were not readable to us, see the header).
  defaults: TENT_DATASET_DEFAULTS,
  create: (o) => new NhlMethod(o),
});
