/**
 * The method interface: everything an online adaptation method is, as the runner sees it.
 *
 * Protocol (prequential): for each batch the runner calls `predict(x)` and scores the returned
 * probabilities, then `adapt(x, y)`. `y` (the batch's labels) is passed only to methods with
 * `usesLabels` (online continual learning), and only after they predicted that batch. A method
 * may change state inside `predict` (BN re-estimates statistics from the unlabeled batch), but
 * never from labels there.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Network } from '../models/network.js';
import type { Rng } from '../util/rng.js';

export interface MethodContext {
  /** The source model; the method owns it for the run (adapts it in place). */
  network: Network;
  /** Seeded randomness for the method's own draws (augmentations, restores, replay). */
  rng: Rng;
  seed: number;
  numClasses: number;
  /** Scenario family, for family-specific defaults ('small' images like CIFAR/Fashion-MNIST, or 'imagenet'). */
  family: 'small' | 'imagenet';
  /**
   * `count` clean (uncorrupted) images of the scenario's dataset, drawn with the run's seed, as
   * [count, H, W, C] floats in [0, 1]; the method disposes the tensor. For methods that need
   * source-domain statistics before adapting (EATA's Fisher information). Absent when the
   * scenario's source has no clean images (precorrupted files).
   */
  cleanImages?: (count: number) => Promise<tf.Tensor4D>;
  /** Where the network was loaded from (ViDA finds its warmed-up adapters beside it). */
  modelPath?: string;
}

export interface AdaptationMethod {
  readonly name: string;
  readonly usesLabels: boolean;
  /** Options after validation and defaults (recorded with every result). */
  readonly options: Record<string, unknown>;
  init(ctx: MethodContext): Promise<void>;
  /** Class probabilities [N, K] for the batch; the caller disposes the tensor. */
  predict(x: tf.Tensor4D): Promise<tf.Tensor2D>;
  adapt(x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void>;
  /** Bytes the method holds beyond the model's own weights (copies, buffers, optimizer state). */
  stateBytes(): number;
  /** Back to the state right after init (source weights, fresh optimizer). */
  reset(): Promise<void>;
  dispose(): void;
}

/** What `registerMethod` takes: a name, validated options, and a factory. */
export interface MethodDefinition<O extends Record<string, unknown> = Record<string, unknown>> {
  name: string;
  description: string;
  usesLabels: boolean;
  /** Validates options and fills defaults (zod's `parse` or any function that throws on bad input). */
  options: { parse(input: unknown): O; shape?: Record<string, unknown> };
  create(options: O): AdaptationMethod;
}
