/**
 * One domain EAR knows: its HDC class descriptors (what "this domain" looks like to the detector)
 * and, for every domain but the source, its adaptor with the adaptor's optimizer and a replay
 * memory of the domain's own labelled encoder outputs.
 *
 * Training (our choice; the paper trains each adaptor on the new domain's data, offline): each
 * labelled batch of the domain gives `steps` Adam steps on the cross-entropy of the batch
 * together with `replay` rows drawn from the domain's memory (fresh draws per step), after which
 * the batch is offered to the memory (a reservoir over the domain's stream). The memory holds
 * encoder outputs, not images: the encoder is frozen, so they are exactly what a new pass would
 * give, at 4 x (taps + features) bytes a row.
 */
import * as tf from '@tensorflow/tfjs';
import { createOptimizer, disposeOptimizer } from '../../training/optimizer.js';
import type { Rng } from '../../util/rng.js';
import { optimizerBytes } from '../base/gradient-method.js';
import { crossEntropy } from '../er.js';
import { ReplayBuffer } from '../replay/replay-buffer.js';
import { Adaptor } from './adaptor.js';
import { DomainDescriptors } from './hdc.js';

export interface TrainingOptions {
  steps: number;
  replay: number;
  lr: number;
}

export class Domain {
  readonly descriptors: DomainDescriptors;
  private optimizer?: tf.Optimizer;
  private readonly memory?: ReplayBuffer;

  /** `adaptor` undefined: the source domain (the base model's own path). */
  constructor(
    numClasses: number,
    dim: number,
    readonly adaptor: Adaptor | undefined,
    memory?: { capacity: number; rng: Rng },
  ) {
    this.descriptors = new DomainDescriptors(numClasses, dim);
    if (adaptor && memory) {
      const { inputDim, featureDim } = adaptor.shape;
      this.memory = new ReplayBuffer({ capacity: memory.capacity, imageBytes: 4 * (inputDim + featureDim), rng: memory.rng });
    }
  }

  /** Trains the adaptor on a labelled batch (z: standardised taps, f: features); returns the last step's loss. */
  train(z: tf.Tensor2D, f: tf.Tensor2D, labels: Int32Array, o: TrainingOptions): number {
    const adaptor = this.adaptor;
    if (!adaptor) throw new Error('Domain.train: the source domain has no adaptor');
    const { inputDim, featureDim } = adaptor.shape;
    const width = inputDim + featureDim;
    this.optimizer ??= createOptimizer('adam', { lr: o.lr });
    const y = tf.tensor1d(labels, 'int32');
    let loss = NaN;
    try {
      for (let s = 0; s < o.steps; s++) {
        const drawn = this.memory && o.replay > 0 ? this.memory.sample(o.replay) : undefined;
        const m = drawn?.labels.length ?? 0;
        const batch = tf.tidy(() => {
          if (m === 0) return { z: z.clone(), f: f.clone(), y: y.clone() };
          const rows = tf.tensor2d(new Float32Array(drawn!.images.buffer, drawn!.images.byteOffset, m * width), [m, width]);
          return {
            z: tf.concat([z, tf.slice(rows, [0, 0], [m, inputDim])]) as tf.Tensor2D,
            f: tf.concat([f, tf.slice(rows, [0, inputDim], [m, featureDim])]) as tf.Tensor2D,
            y: tf.concat([y, tf.tensor1d(drawn!.labels, 'int32')]) as tf.Tensor1D,
          };
        });
        try {
          const { value, grads } = tf.variableGrads(() => crossEntropy(adaptor.logits(batch.z, batch.f), batch.y), adaptor.variables);
          loss = value.dataSync()[0]!;
          this.optimizer.applyGradients(grads);
          tf.dispose([value, ...Object.values(grads)]);
        } finally {
          tf.dispose([batch.z, batch.f, batch.y]);
        }
      }
    } finally {
      y.dispose();
    }
    if (this.memory) {
      const rows = tf.tidy(() => tf.concat([z, f], 1));
      const values = Float32Array.from(rows.dataSync());
      rows.dispose();
      this.memory.update(new Uint8Array(values.buffer), labels);
    }
    return loss;
  }

  /** Tensor bytes: class descriptors, adaptor weights, optimizer slots. */
  bytes(): number {
    return this.descriptors.bytes() + this.optimizerBytes() + (this.adaptor?.bytes() ?? 0);
  }

  optimizerBytes(): number {
    return this.optimizer ? optimizerBytes(this.optimizer) : 0;
  }

  /** Bytes outside tensors: the replay memory. */
  hostBytes(): number {
    return this.memory?.stateBytes() ?? 0;
  }

  dispose(): void {
    this.descriptors.dispose();
    this.adaptor?.dispose();
    if (this.optimizer) disposeOptimizer(this.optimizer);
    this.optimizer = undefined;
  }
}
