/**
 * The lifecycle every method shares, with the behaviour of a frozen model as the default:
 * predict = evaluate = softmax of the network's logits, no adaptation. A method overrides only
 * what makes it different (LAME its output, BN its normalisation); gradient methods build on
 * `GradientMethod`, which adds the training step.
 *
 * What it owns, so no method writes it again: the context, the source snapshot (if a method
 * changes weights or statistics), copies of the network (teachers, anchors) and tensors the
 * method keeps (their bytes are `stateBytes`, their disposal is `dispose`), and the per-batch
 * diagnostics.
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../../models/network.js';
import { WeightSnapshot } from '../../models/snapshot.js';
import type { AdaptationMethod, Diagnostics, MethodContext } from '../types.js';

/** Bytes of a tensor's data (what tf.memory().numBytes counts for it). */
export function tensorBytes(t: tf.Tensor): number {
  return t.size * (t.dtype === 'bool' ? 1 : 4);
}

/** Bytes of every weight of a network, adapters included. */
export function networkBytes(network: Network): number {
  let n = 0;
  for (const v of network.namedWeights().values()) n += tensorBytes(v);
  return n;
}

export class FrozenMethod<O extends Record<string, unknown> = Record<string, unknown>> implements AdaptationMethod {
  readonly usesLabels: boolean = false;
  readonly labelSpace: 'head' | 'dataset' = 'head';
  protected ctx!: MethodContext;
  /** The run's network (the student, for teacher-student methods). */
  protected network!: Network;
  /** Source weights and statistics, kept by methods that change them (`keepSource`). */
  protected source?: WeightSnapshot;
  private report: Diagnostics | undefined;
  private readonly copies: Network[] = [];
  private readonly kept: tf.Tensor[] = [];

  constructor(
    readonly name: string,
    readonly options: O,
  ) {}

  async init(ctx: MethodContext): Promise<void> {
    this.ctx = ctx;
    this.network = ctx.network;
    this.network.setNormStatistics('running');
    await this.setup(ctx);
  }

  /** Method-specific set-up after the context is stored (norm statistics, copies, adapters). */
  protected async setup(_ctx: MethodContext): Promise<void> {}

  async predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    this.report = undefined;
    return this.output(x);
  }

  /** The prediction for a stream batch (may change state, never from labels). */
  protected async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return tf.tidy(() => tf.softmax(this.network.logits(x)));
  }

  async adapt(_x: tf.Tensor4D, _y?: tf.Tensor1D): Promise<void> {}

  async evaluate(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const net = this.evaluationNetwork();
    return net.withFrozenStatistics(() => this.evaluationOutput(x, net));
  }

  /** The network whose outputs the method reports (a teacher, for teacher-student methods). */
  protected evaluationNetwork(): Network {
    return this.network;
  }

  /** The held-out prediction; runs with running statistics read-only, must change nothing. */
  protected evaluationOutput(x: tf.Tensor4D, net: Network): tf.Tensor2D {
    return tf.tidy(() => tf.softmax(net.logits(x)));
  }

  diagnostics(): Diagnostics | undefined {
    return this.report;
  }

  /** Records a scalar about the current batch (cleared when the next batch is predicted). */
  protected diagnose(name: string, value: number): void {
    (this.report ??= {})[name] = value;
  }

  /** Snapshots the current weights and statistics as the source state `reset` returns to. */
  protected keepSource(): void {
    this.source?.dispose();
    this.source = new WeightSnapshot(this.network);
  }

  /** A deep copy of the network that the method owns (teacher, anchor): counted and disposed here. */
  protected async copyNetwork(network: Network = this.network): Promise<Network> {
    const copy = await network.clone();
    this.copies.push(copy);
    return copy;
  }

  /** Keeps tensors for the run (Fisher information, anchors): counted and disposed here. */
  protected keep<T extends tf.Tensor>(tensors: T[]): T[] {
    for (const t of tensors) this.kept.push(tf.keep(t));
    return tensors;
  }

  stateBytes(): number {
    let bytes = this.source?.bytes() ?? 0;
    for (const c of this.copies) bytes += networkBytes(c);
    for (const t of this.kept) bytes += tensorBytes(t);
    return bytes + this.extraStateBytes();
  }

  /** Bytes held beyond what the base tracks (e.g. adapters the method attached to the network). */
  protected extraStateBytes(): number {
    return 0;
  }

  async reset(): Promise<void> {
    this.report = undefined;
    this.source?.restore(this.network);
  }

  dispose(): void {
    this.source?.dispose();
    this.source = undefined;
    for (const c of this.copies.splice(0)) c.dispose();
    tf.dispose(this.kept.splice(0));
  }
}
