/**
 * UER, unbias experience replay (Lin, Feng, Zhang, Qiao, Li, Ye: "UER: A Heuristic Bias
 * Addressing Approach for Online Continual Learning", ACM MM 2023, arXiv 2309.04081).
 *
 * The paper factors the head's dot-product logit z_c = w_c . h = ||w_c|| ||h|| cos(theta_c) into
 * a norm factor and an angle factor, finds that the bias towards the current task's classes sits
 * in the angle factor while the norm factor helps keep old knowledge, and so learns current
 * (stream) samples only through the angle factor, as cosine logits, and replays memory samples
 * through both factors, the dot-product logits; predictions use the dot-product logits.
 *
 * One optimiser step per stream batch, as ER (./er.ts) on the same replay memory:
 *   loss = CE(cos(theta) / temperature on the stream batch) + CE(h W + b on the replay batch),
 * each averaged over its own batch, each batch its own forward pass (BatchNorm normalises each
 * with its own statistics and folds both into its running statistics, as Mai et al.'s framework,
 * which the authors' code bases build on, does); then the stream batch is offered to the memory
 * (never replayed in its own step). While the memory is empty the step is the stream loss alone.
 * The losses are in ./uer/losses.ts; the head's variables come from `Network.headVariables()`.
 *
 * What we read: the paper's abstract (arXiv 2309.04081, and the papers-with-code / Hugging Face
 * copies), which states the decomposition, the two losses' split (stream: angle only; replay: norm
 * and angle) and that UER is experience replay; its full text was not available to us, so no
 * equation, hyperparameter or table of it is used here. The code it names,
 * github.com/FelixHuiweiLin/UER, holds a README only (no code) in the snapshot we read. The
 * authors' sibling repositories on the same framework, FelixHuiweiLin/PCR (`models/resnet.py`
 * cosLinear, `general_main.py`) and FelixHuiweiLin/ER-FSL, give their cosine head and defaults.
 *
 * Assumptions (paper / authors' other code / ours):
 *  - Cosine logits = cos(theta) / `temperature`, temperature 0.09 (scale about 11.1): the
 *    authors' cosine head in PCR and ER-FSL (cosLinear: no bias, cos / 0.09). Ours to reuse it.
 *  - Normalisation v / max(||v||, 1e-6) (theirs: v / (||v|| + 1e-6)): see ./uer/losses.ts.
 *  - The head bias (the zoo's Dense head has one): not part of the cosine logits (they have no
 *    bias). `bias: "keep"` (default) keeps it in the replay logits and at inference, i.e. the
 *    network's own logits; `"drop"` leaves it out of both (it then never changes). Our choice.
 *  - Stream and replay losses summed with weight 1 each, separate forward passes: ours (ER's
 *    "separate" reading, Mai et al.'s framework).
 *  - Optimiser and batches as ER on Mai et al.'s framework, which the authors' PCR and ER-FSL
 *    code defaults to: SGD lr 0.1, no momentum, no weight decay, replay batch 10 (stream batch:
 *    the scenario's); memory 200 with exact reservoir updates (`policy: "batched"` is the
 *    framework's own update; `"class-balanced"` also offered).
 *  - No augmentation (ER's default here). The authors' PCR and ER-FSL code augments both the
 *    stream and the replay batch (SCR's transforms); whether UER does is not known to us.
 *  - One optimiser step per batch (the framework's mem_iters 1), full network trained.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Network } from '../models/network.js';
import { OnlineLearner, type LabelledBatch, type LearnerOptimizer } from './base/online-learner.js';
import { registerMethod } from './registry.js';
import { dotProductLogits, replayLoss, streamLoss } from './uer/losses.js';

export const uerOptions = z.strictObject({
  /** M: images the replay memory holds. */
  memorySize: z.number().int().positive().default(200),
  /** Images drawn from the memory for each step (fewer while it holds fewer). */
  replayBatch: z.number().int().positive().default(10),
  policy: z.enum(['reservoir', 'batched', 'class-balanced']).default('reservoir'),
  /** The cosine logits are cos(theta) / temperature (the authors' cosine head: 0.09). */
  temperature: z.number().positive().default(0.09),
  /** The head bias in the replay logits and at inference ('keep': the network's logits). */
  bias: z.enum(['keep', 'drop']).default('keep'),
  optimizer: z.enum(['sgd', 'adam']).default('sgd'),
  lr: z.number().positive().default(0.1),
  momentum: z.number().min(0).max(1).default(0),
  weightDecay: z.number().min(0).default(0),
});
export type UerOptions = z.output<typeof uerOptions>;

export class UerMethod extends OnlineLearner<UerOptions> {
  private head!: ReturnType<Network['headVariables']>;

  constructor(options: UerOptions) {
    super('uer', options);
  }

  protected override async setup(): Promise<void> {
    this.head = this.network.headVariables();
    this.createMemory(this.options.memorySize, this.options.policy);
  }

  protected optimizer(): LearnerOptimizer {
    const { optimizer: kind, lr, momentum, weightDecay } = this.options;
    return { kind, lr, momentum, weightDecay };
  }

  /** The bias the dot-product logits use (none with `bias: "drop"`). */
  private get bias(): tf.Tensor1D | undefined {
    return this.options.bias === 'keep' ? (this.head.bias as tf.Tensor1D | undefined) : undefined;
  }

  /** Dot-product logits of a batch (the network's, without the bias under `bias: "drop"`). */
  private logitsOf(x: tf.Tensor4D, net: Network = this.network): tf.Tensor2D {
    return tf.tidy(() => dotProductLogits(net.features(x), this.head.kernel as tf.Tensor2D, this.bias));
  }

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return tf.tidy(() => tf.softmax(this.logitsOf(x)));
  }

  protected override evaluationOutput(x: tf.Tensor4D, net: Network): tf.Tensor2D {
    return tf.tidy(() => tf.softmax(this.logitsOf(x, net)));
  }

  protected async learn({ x, y, labels }: LabelledBatch): Promise<void> {
    const kernel = this.head.kernel as tf.Tensor2D;
    this.withReplay(this.options.replayBatch, (replay) => {
      const loss = this.step(() => {
        // The stream batch only through the angle factor (no norm, no bias)...
        const current = streamLoss(this.network.features(x), kernel, y, this.options.temperature);
        if (!replay) return current;
        // ...the replayed batch through the full dot-product logits.
        return tf.add(current, replayLoss(this.network.features(replay.x), kernel, this.bias, replay.y)) as tf.Scalar;
      });
      this.diagnose('loss', loss);
      this.diagnose('replayed', replay?.size ?? 0);
    });
    this.memory!.update(this.toStored(x), labels);
  }
}

registerMethod({
  name: 'uer',
  description: 'UER: experience replay where the stream batch is learned through cosine logits (angle only) and the replay batch through the dot-product logits; predicts with the dot-product logits',
  usesLabels: true,
  fullHead: true,
  options: uerOptions,
  create: (o) => new UerMethod(o),
});
