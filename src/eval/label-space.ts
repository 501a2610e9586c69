/**
 * The scenario's label space. Methods return probabilities over the dataset's K classes; a model
 * trained on a class subset (e.g. `fmnist-resnet8-base5`) has a head over fewer columns, listed
 * by its manifest's `classes`. For methods that answer in head space (`labelSpace: 'head'`, every
 * frozen and test-time method) the runner spreads the head's columns over the K classes, with 0
 * for the classes the head cannot predict; for methods that answer over all K classes
 * (`labelSpace: 'dataset'`) the columns are the classes and nothing is mapped.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';

export class LabelSpace {
  /** [headSize, K] 0/1 matrix, or undefined when the head already is the dataset's classes in order. */
  private readonly spread?: tf.Tensor2D;

  constructor(
    /** Dataset class of each column the method returns (the head's, for `labelSpace: 'head'`). */
    readonly columnClasses: readonly number[],
    /** K: the dataset's number of classes. */
    readonly numClasses: number,
  ) {
    const identity = columnClasses.length === numClasses && columnClasses.every((c, i) => c === i);
    if (!identity) {
      const m = new Float32Array(columnClasses.length * numClasses);
      columnClasses.forEach((c, i) => (m[i * numClasses + c] = 1));
      this.spread = tf.keep(tf.tensor2d(m, [columnClasses.length, numClasses]));
    }
  }

  /**
   * Checks that the model's head and class list fit the dataset; `where` names the model for
   * the message.
   */
  static check(headClasses: readonly number[], headSize: number, numClasses: number, where: string): void {
    if (headClasses.length !== headSize) {
      throw new CttaError(`${where}: the manifest lists ${headClasses.length} classes but the model's head has ${headSize} outputs`, {
        fix: "make the manifest's `classes` list one dataset class per head output",
      });
    }
    const bad = headClasses.find((c) => !Number.isInteger(c) || c < 0 || c >= numClasses);
    if (bad !== undefined) {
      throw new CttaError(`${where}: head class ${bad} is not a class of the scenario's dataset (0-${numClasses - 1})`, {
        fix: 'use a model trained on this dataset',
      });
    }
    if (new Set(headClasses).size !== headClasses.length) {
      throw new CttaError(`${where}: the manifest lists a class twice`, { fix: "make the manifest's `classes` distinct" });
    }
  }

  /** [N, K] probabilities from the method's [N, columns] ones; takes ownership of `probs`. */
  toDataset(probs: tf.Tensor2D): tf.Tensor2D {
    if (!this.spread) return probs;
    const out = tf.matMul(probs, this.spread) as tf.Tensor2D;
    probs.dispose();
    return out;
  }

  dispose(): void {
    this.spread?.dispose();
  }
}
