/**
 * The mean-teacher pattern CoTTA and ViDA share: every weight of the student (the run's network)
 * is trained on a cross-entropy against a target the teacher gives before the step; after it,
 * the teacher moves towards the student by an EMA and student weights are stochastically
 * restored to their source values. The teacher's output is the prediction and what `evaluate`
 * reports. BatchNorm uses batch statistics in both, as in the authors' code.
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../../models/network.js';
import { emaUpdate, softCrossEntropy, stochasticRestore, symmetricCrossEntropy } from '../teacher-student.js';
import { GradientMethod, type Objective } from './gradient-method.js';

export interface MeanTeacherOptions extends Record<string, unknown> {
  /** Teacher EMA momentum. */
  momentum: number;
  /** Per-element probability of restoring a student weight after each step. */
  restore: number;
  /** 'soft': CE against the teacher (CIFAR code); 'symmetric': 0.5/0.5 both ways (ImageNet code). */
  loss: 'soft' | 'symmetric';
}

export abstract class MeanTeacherMethod<O extends MeanTeacherOptions> extends GradientMethod<O> {
  protected teacher!: Network;

  /** Batch statistics, and the teacher as a copy of the student as it is now (adapters included). */
  protected async createTeacher(): Promise<void> {
    this.network.setNormStatistics('batch');
    this.teacher = await this.copyNetwork();
  }

  protected trainable(): tf.Variable[] {
    return this.network.trainableVariables();
  }

  protected override evaluationNetwork(): Network {
    return this.teacher;
  }

  /** The student's loss against the (constant) teacher target from `prepare`; the target is the prediction. */
  protected objective(x: tf.Tensor4D, target: tf.Tensor | undefined): Objective {
    const t = target as tf.Tensor2D;
    const student = this.network.logits(x);
    const loss = this.options.loss === 'symmetric' ? symmetricCrossEntropy(student, t) : softCrossEntropy(student, t);
    return { loss, prediction: tf.softmax(t) };
  }

  /** The EMA momentum of the teacher's weight `name` (ViDA moves adapters at their own rate). */
  protected teacherMomentum(_name: string): number {
    return this.options.momentum;
  }

  protected override async afterStep(): Promise<void> {
    emaUpdate(this.teacher, this.network, (name) => this.teacherMomentum(name));
    stochasticRestore(this.network, this.source!, this.options.restore, this.ctx.rng);
  }

  override async reset(): Promise<void> {
    await super.reset();
    this.source!.restore(this.teacher);
  }
}
