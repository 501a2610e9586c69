/**
 * TAME's experts as whole networks ('network' mode, the default): expert 0 is the run's network
 * itself, every later expert a copy of it with its own weights, BatchNorm statistics and
 * optimiser. A new expert starts from the run's network as it was at init (`'initial'`: the
 * paper's fresh expert network; for a scratch run, the run's random initialisation) or from a
 * copy of an existing expert.
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../../models/network.js';
import type { WeightSnapshot } from '../../models/snapshot.js';
import { networkBytes } from '../base/frozen-method.js';
import { crossEntropy } from '../er.js';
import { applyAndDispose, assembleRouted, scalarOf, trainingPass, withBatchStatistics, type ExpertPool } from './expert-pool.js';
import { ParamGroup, type ParamGroupSpec } from './param-group.js';

export class NetworkExperts implements ExpertPool {
  /** nets[0] is the run's network (owned by the run), the others are owned here. */
  private readonly nets: Network[];
  private readonly groups: ParamGroup[];

  constructor(
    private readonly name: string,
    network: Network,
    /** The run's network as it was at init (the method's source snapshot). */
    private readonly initial: () => WeightSnapshot,
    private readonly spec: ParamGroupSpec,
  ) {
    this.nets = [network];
    this.groups = [new ParamGroup(network.trainableVariables(), spec)];
  }

  get size(): number {
    return this.nets.length;
  }

  predict(x: tf.Tensor4D, assignment?: Int32Array): tf.Tensor2D {
    return assembleRouted(x.shape[0], assignment, (e, rows) => tf.softmax(this.nets[e]!.logits(rows ? (tf.gather(x, rows) as tf.Tensor4D) : x)));
  }

  losses(experts: readonly number[], x: tf.Tensor4D, y: tf.Tensor1D): number[] {
    return experts.map((e) => withBatchStatistics([this.nets[e]!], () => scalarOf(() => crossEntropy(this.nets[e]!.logits(x), y))));
  }

  train(e: number, x: tf.Tensor4D, y: tf.Tensor1D): number {
    const net = this.nets[e]!;
    const group = this.groups[e]!;
    const { value, grads } = trainingPass(this.name, [net], [...group.variables], () => crossEntropy(net.logits(x), y));
    applyAndDispose(grads, [group]);
    return value;
  }

  async spawn(from: 'initial' | number): Promise<number> {
    const net = await (from === 'initial' ? this.nets[0]! : this.nets[from]!).clone();
    if (from === 'initial') this.initial().restore(net);
    net.setNormStatistics('running');
    this.nets.push(net);
    this.groups.push(new ParamGroup(net.trainableVariables(), this.spec));
    return this.nets.length - 1;
  }

  bytes(): number {
    return this.nets.slice(1).reduce((sum, n) => sum + networkBytes(n), 0);
  }

  optimizerBytes(): number {
    return this.groups.reduce((sum, g) => sum + g.bytes(), 0);
  }

  reset(): void {
    for (const n of this.nets.splice(1)) n.dispose();
    for (const g of this.groups.splice(1)) g.clear();
    this.groups[0]!.clear();
  }

  dispose(): void {
    this.reset();
  }
}
