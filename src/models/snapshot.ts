/**
 * Copies of a network's weights (including running statistics), for methods that must return
 * to the source state (reset, episodic TENT, stochastic restore) or keep an anchor.
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from './network.js';

export class WeightSnapshot {
  private readonly saved = new Map<string, tf.Tensor>();

  constructor(network: Network) {
    for (const [name, v] of network.namedWeights()) this.saved.set(name, tf.keep(v.clone()));
  }

  get(name: string): tf.Tensor | undefined {
    return this.saved.get(name);
  }

  /** Writes the saved values back into `network` (same architecture). */
  restore(network: Network): void {
    for (const [name, v] of network.namedWeights()) {
      const s = this.saved.get(name);
      if (s) v.assign(s);
    }
  }

  bytes(): number {
    let n = 0;
    for (const t of this.saved.values()) n += t.size * 4;
    return n;
  }

  dispose(): void {
    for (const t of this.saved.values()) t.dispose();
    this.saved.clear();
  }
}
