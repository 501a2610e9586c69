/**
 * The contract checker catches broken methods: deliberately broken toys, each wrong in one way,
 * get exactly the matching failures (and a correct label-using toy gets none, which runs the
 * usesLabels branch of the checker).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { beforeAll, describe, expect, it } from 'vitest';
import { FrozenMethod } from '../../src/methods/base/frozen-method.js';
import { registerMethod } from '../../src/methods/registry.js';
import type { MethodContext } from '../../src/methods/types.js';
import { useWasm } from '../helpers.js';
import { checkMethod, checkOf } from './check-method.js';

beforeAll(useWasm);

const noOptions = z.strictObject({});
const toy = (name: string, create: () => FrozenMethod) =>
  registerMethod({ name, description: `broken toy (${name})`, usesLabels: false, options: noOptions, create });

/** Leaks one tensor per adapted batch (a result created outside tf.tidy and never disposed). */
class LeakPerBatch extends FrozenMethod {
  override async adapt(x: tf.Tensor4D): Promise<void> {
    tf.mean(x); // never disposed
  }
}
toy('toy-leak', () => new LeakPerBatch('toy-leak', {}));

/**
 * BN with EMA target statistics (as `bn --set bn.ema=...`) whose evaluate forgets to freeze the
 * running statistics: every held-out batch is folded into them.
 */
class EvaluateWrites extends FrozenMethod {
  protected override async setup(): Promise<void> {
    this.keepSource();
    this.network.setNormStatistics('ema', { momentum: 0.1 });
  }

  override async evaluate(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return tf.tidy(() => tf.softmax(this.network.logits(x))); // no withFrozenStatistics
  }
}
toy('toy-evaluate-writes', () => new EvaluateWrites('toy-evaluate-writes', {}));

/** Keeps a 1000-float buffer but reports no state. */
class WrongBytes extends FrozenMethod {
  private buffer?: tf.Tensor;

  protected override async setup(): Promise<void> {
    this.buffer = tf.keep(tf.zeros([1000]));
  }

  override stateBytes(): number {
    return 0;
  }

  override dispose(): void {
    this.buffer?.dispose();
    super.dispose();
  }
}
toy('toy-bytes', () => new WrongBytes('toy-bytes', {}));

/** Returns 0.9 x softmax from predict (evaluate is right). */
class RowsNotOne extends FrozenMethod {
  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return tf.tidy(() => tf.mul(tf.softmax(this.network.logits(x)), 0.9) as tf.Tensor2D);
  }
}
toy('toy-sums', () => new RowsNotOne('toy-sums', {}));

/** BN with EMA target statistics that forgets to keep the source ones: reset cannot restore them. */
class NoSource extends FrozenMethod {
  protected override async setup(): Promise<void> {
    this.network.setNormStatistics('ema', { momentum: 0.1 });
  }
}
toy('toy-no-reset', () => new NoSource('toy-no-reset', {}));

/** Scales its logits by a temperature from Math.random (not from the context's seeded rng). */
class Unseeded extends FrozenMethod {
  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return tf.tidy(() => tf.softmax(tf.mul(this.network.logits(x), 1 + Math.random())) as tf.Tensor2D);
  }
}
toy('toy-unseeded', () => new Unseeded('toy-unseeded', {}));

/** Reports a NaN diagnostic. */
class NanDiagnostic extends FrozenMethod {
  override async adapt(): Promise<void> {
    this.diagnose('ratio', 0 / 0);
  }
}
toy('toy-diagnostics', () => new NanDiagnostic('toy-diagnostics', {}));

/**
 * A label-using method whose returned prediction is a variable it overwrites in adapt with the
 * one-hot labels: read after adapt, the prediction "knows" its own batch's labels.
 */
class OverwritesPrediction extends FrozenMethod {
  override readonly usesLabels = true;
  override readonly labelSpace = 'dataset' as const;
  private last?: tf.Variable;

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const probs = tf.tidy(() => tf.softmax(this.network.logits(x)));
    this.last = tf.variable(probs);
    probs.dispose();
    return this.last as unknown as tf.Tensor2D;
  }

  override async adapt(_x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void> {
    if (y && this.last && !this.last.isDisposed) tf.tidy(() => this.last!.assign(tf.oneHot(y, this.ctx.numClasses).toFloat()));
    this.last = undefined;
  }
}
registerMethod({ name: 'toy-peek', description: 'broken toy', usesLabels: true, options: noOptions, create: () => new OverwritesPrediction('toy-peek', {}) });

/** A correct label-using toy: the source model reweighted by the running class frequencies of the labels seen. */
class LabelFrequencies extends FrozenMethod {
  override readonly usesLabels = true;
  override readonly labelSpace = 'dataset' as const;
  private prior?: tf.Tensor1D;

  protected override async setup(ctx: MethodContext): Promise<void> {
    this.prior = tf.keep(tf.fill([ctx.numClasses], 1 / ctx.numClasses));
  }

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return this.evaluationOutput(x, this.network);
  }

  protected override evaluationOutput(x: tf.Tensor4D, net: typeof this.network): tf.Tensor2D {
    return tf.tidy(() => {
      const p = tf.mul(tf.softmax(net.logits(x)), this.prior!);
      return tf.div(p, tf.sum(p, 1, true)) as tf.Tensor2D;
    });
  }

  override async adapt(_x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void> {
    if (!y) return;
    const next = tf.tidy(() => tf.add(tf.mul(this.prior!, 0.9), tf.mul(tf.mean(tf.oneHot(y, this.ctx.numClasses).toFloat(), 0), 0.1)) as tf.Tensor1D);
    this.prior!.dispose();
    this.prior = tf.keep(next);
  }

  protected override extraStateBytes(): number {
    return (this.prior?.size ?? 0) * 4;
  }

  override async reset(): Promise<void> {
    await super.reset();
    this.prior!.dispose();
    this.prior = tf.keep(tf.fill([this.ctx.numClasses], 1 / this.ctx.numClasses));
  }

  override dispose(): void {
    this.prior?.dispose();
    this.prior = undefined;
    super.dispose();
  }
}
registerMethod({ name: 'toy-label-frequencies', description: 'correct toy', usesLabels: true, options: noOptions, create: () => new LabelFrequencies('toy-label-frequencies', {}) });


const checks = (failures: string[]) => [...new Set(failures.map(checkOf))].sort();

describe('checkMethod on broken methods', () => {
  it('a tensor leaked per batch: the count grows with the batches, and 20 tensors are left after dispose', async () => {
    const failures = await checkMethod('toy-leak');
    expect(checks(failures)).toEqual(['leak']);
    expect(failures).toEqual([
      expect.stringMatching(/^leak: the number of tensors grows with the batches: after init (\d+), after each batch /),
      // The leaked tensors are still there after reset (reset cannot free what nothing owns).
      expect.stringMatching(/^leak: after reset\(\) \d+ tensors, more than after init/),
      expect.stringMatching(/^leak: 20 tensor\(s\) left after dispose\(\)/),
    ]);
    // Only 3 x 4 bytes leaked when stateBytes is measured: below the 64-byte tolerance, so no stateBytes failure.
  });

  it('evaluate writing BatchNorm running statistics: the direct check and the twin run both see it', async () => {
    const failures = await checkMethod('toy-evaluate-writes');
    expect(failures).toEqual([
      expect.stringMatching(/^evaluate: evaluate\(\) changed 18 weight\(s\): stem_norm\/moving_mean, stem_norm\/moving_variance/),
      expect.stringMatching(/^evaluate: after evaluate\(\) calls, the prediction of batch 2 differs from a twin run without them/),
      expect.stringMatching(/^evaluate: after evaluate\(\) calls, 18 weight\(s\) differ from a twin run without them/),
    ]);
  });

  it('stateBytes not counting a kept tensor', async () => {
    expect(await checkMethod('toy-bytes')).toEqual(['stateBytes: stateBytes() = 0 but the method holds 4000 bytes of tensors beyond the model (after init + 3 batches)']);
  });

  it('rows that do not sum to 1', async () => {
    expect(await checkMethod('toy-sums')).toEqual([expect.stringMatching(/^probabilities: predict row 0 sums to 0\.8999\d*, not 1/)]);
  });

  it('a returned prediction that adapt overwrites with its labels', async () => {
    expect(await checkMethod('toy-peek')).toEqual([
      expect.stringMatching(/^labels: the prediction of batch 0 changed after it was returned \(by adapt\)/),
      expect.stringMatching(/^labels: the prediction of batch 2 depends on its own labels, given after it/),
    ]);
  });

  it('reset that does not restore the running statistics', async () => {
    expect(await checkMethod('toy-no-reset')).toEqual([
      expect.stringMatching(/^reset: after reset\(\) 18 weight\(s\) differ from their values right after init: stem_norm\/moving_mean/),
      expect.stringMatching(/^reset: the first prediction after reset\(\) differs from a fresh instance's first prediction/),
    ]);
  });

  it('randomness not drawn from the seeded context rng', async () => {
    // The post-reset prediction is compared with the first one, so reset fails too; the
    // cross-run evaluate comparison is skipped once the runs disagree before any evaluate.
    expect(await checkMethod('toy-unseeded')).toEqual([
      expect.stringMatching(/^reset: the first prediction after reset\(\) differs/),
      expect.stringMatching(/^determinism: two fresh instances \(same seed\) predict batch 0 differently/),
    ]);
  });

  it('a diagnostic that is not a finite number', async () => {
    expect(await checkMethod('toy-diagnostics')).toEqual(['diagnostics: diagnostics() after batch 0: ratio = NaN is not a finite number']);
  });

  it('a correct label-using method passes (the usesLabels branch of the checker)', async () => {
    expect(await checkMethod('toy-label-frequencies')).toEqual([]);
  });
});
