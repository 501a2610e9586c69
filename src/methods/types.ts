/**
 * The method interface: everything an online adaptation method is, as the runner sees it.
 *
 * Protocol (prequential): for each batch the runner calls `predict(x)` and scores the returned
 * probabilities, then `adapt(x, y)`. `y` (the batch's labels) is passed only to methods with
 * `usesLabels` (online continual learning), and only after they predicted that batch. A method
 * may change state inside `predict` (BN re-estimates statistics from the unlabeled batch), but
 * never from labels there. `evaluate(x)` (held-out task evaluation) changes no state at all.
 *
 * Most methods extend `FrozenMethod` or `GradientMethod` (./base/) instead of writing this
 * interface out: those own the lifecycle (source snapshot, optimizers, reset, disposal).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Network } from '../models/network.js';
import type { DatasetDefaultsKey } from '../streams/datasets/types.js';
import type { Rng } from '../util/rng.js';


export interface MethodContext {
  /** The source model; the method owns it for the run (adapts it in place). */
  network: Network;
  /** Seeded randomness for the method's own draws (augmentations, restores, replay). */
  rng: Rng;
  seed: number;
  /** K: the number of classes of the scenario's dataset; `predict` returns [N, K] for `labelSpace: 'dataset'` methods. */
  numClasses: number;
  /** The dataset class of each column of the network's head (a class-subset model has fewer than K). */
  headClasses: readonly number[];
  /** The per-dataset defaults row the options were resolved with. */
  dataset: DatasetDefaultsKey;
  /**
   * `count` clean (uncorrupted) images of the scenario's source, drawn with the run's seed, as
   * [count, H, W, C] floats in [0, 1]; the method disposes the tensor. For methods that need
   * source-domain statistics before adapting (EATA's Fisher information). Absent when the
   * scenario names no clean source (files that hold only corrupted images, and no `clean` field).
   */
  cleanImages?: (count: number) => Promise<tf.Tensor4D>;
  /**
   * A companion checkpoint of the scenario's model, e.g. ViDA's warmed-up adapters: `kind`
   * 'vida' loads `path` (default: the model's directory + `-vida`), checks that its backbone is
   * bit-identical to `network`, and returns it; the method disposes it. Methods never read files
   * themselves: the run set-up does, so every file error is reported the same way.
   */
  companion?: (kind: string, path?: string) => Promise<Network>;
  /**
   * Says what a long set-up step is doing ("Fisher information from 2000 clean images"), shown
   * to the user while nothing else moves (before the first batch). Optional: call it as
   * `ctx.status?.(text)`.
   */
  status?: (text: string) => void;
}

/** Per-batch scalars a method reports (EATA: samples selected; SAR: recovered...); stored in the batch records. */
export type Diagnostics = Record<string, number>;

export interface AdaptationMethod {
  readonly name: string;
  readonly usesLabels: boolean;
  /**
   * 'head': `predict`/`evaluate` return probabilities over the network head's classes, and the
   * runner maps them to the dataset's K (a class-subset model's missing classes get 0).
   * 'dataset': the method returns all K columns itself (online continual learning heads).
   */
  readonly labelSpace: 'head' | 'dataset';
  /** Options after validation and defaults (recorded with every result). */
  readonly options: Record<string, unknown>;
  init(ctx: MethodContext): Promise<void>;
  /** Class probabilities [N, K] for the batch; the caller disposes the tensor. */
  predict(x: tf.Tensor4D): Promise<tf.Tensor2D>;
  adapt(x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void>;
  /** Probabilities for held-out images; changes no weight, statistic or counter (caller disposes). */
  evaluate(x: tf.Tensor4D): Promise<tf.Tensor2D>;
  /** Scalars about the last predict+adapt, or undefined when the method reports none. */
  diagnostics?(): Diagnostics | undefined;
  /** Bytes the method holds beyond the model's own weights (copies, buffers, optimizer state). */
  stateBytes(): number;
  /**
   * `stateBytes` split by what holds it, in bytes, e.g. `{ buffer, optimizer, analytic }`; names
   * are identifiers (they become table columns). The runner samples it after every batch and
   * records each part's peak (summary `peakStateParts`): replay buffers grow over the stream
   * while the end-of-run total hides when and where the memory went. Optional.
   */
  stateParts?(): Record<string, number>;
  /**
   * The part of `stateBytes` held outside tensors, in plain JS arrays (replay images as uint8,
   * float64 ridge matrices): tf.memory() does not see it. Absent = 0.
   */
  hostStateBytes?(): number;
  /** Back to the state right after init (source weights, fresh optimizer). */
  reset(): Promise<void>;
  dispose(): void;
}

/** What `registerMethod` takes: a name, validated options, per-dataset defaults, and a factory. */
export interface MethodDefinition<O extends Record<string, unknown> = Record<string, unknown>> {
  name: string;
  description: string;
  usesLabels: boolean;
  /**
   * The method trains a head over every class of the dataset, so it cannot start from a
   * checkpoint whose head predicts only some (`"modelClasses": "subset"`, e.g. the base-5 model):
   * its init refuses one. Declared so sweeps and reports know before running (default false).
   */
  fullHead?: boolean;
  /** Validates options and fills defaults (zod's `parse` or any function that throws on bad input). */
  options: { parse(input: unknown): O; shape?: Record<string, unknown> };
  /**
   * Values of options the papers set per dataset, used where the user set none (before
   * `options.parse`). A missing row (Fashion-MNIST's, usually) falls back to CIFAR-10's: both
   * are small 10-class images.
   */
  defaults?: Partial<Record<DatasetDefaultsKey, Partial<O>>>;
  create(options: O): AdaptationMethod;
}
