/**
 * TAME's task-shift detector for one expert, a pure class (no tensors): it watches the stream of
 * batch losses of that expert and says when the loss has jumped by a statistically significant
 * amount, which TAME reads as "a new task has begun" (Zhu et al., "TAME: Task Agnostic Continual
 * Learning using Multiple Experts", arXiv 2210.03869: "for each new coming task there occurs a
 * statistically-significant deviation in the value of the loss function that marks the onset of
 * this new task").
 *
 * The rule (the project's issue "TAME"):
 *  - smoothed = EWMA of the expert's batch losses, smoothed <- smoothed + alpha (loss - smoothed)
 *    (alpha 0.2; the first loss starts it);
 *  - threshold = mean + sigmas x std of the expert's last `window` (100) recorded batch losses
 *    (sigmas 3; sample std);
 *  - a shift when smoothed > threshold.
 * An expert that is not active keeps its EWMA and history as they were; it "accepts" a batch
 * whose loss is within its own threshold.
 *
 * The history holds raw losses and the test is on the smoothed one: the EWMA of stationary noise
 * has std sqrt(alpha / (2 - alpha)) = 1/3 of the raw std at alpha 0.2, so mean + 3 raw std is 9
 * of its own std away (no false alarm in practice), while a jump of twice the threshold distance
 * (6 raw std) is crossed after ~4 batches and a large one (a new task's unseen classes) after 1-2.
 *
 * Our additions (the paper trains each task to convergence; single-pass online, an expert is
 * still on its learning curve when the next task comes, and one SGD step on a new task's batch
 * already lowers its loss):
 *  - Gate: a loss above the threshold is an `outlier` and waits (pending) instead of entering the
 *    history. If an ordinary loss follows, the pending ones were the stream's own tail and are
 *    recorded then (no truncation bias on a heavy-tailed stationary loss); if the shift fires,
 *    they were the new task's and are dropped. Recording them at once lets the first losses of
 *    a new task inflate the std while the EWMA is still climbing, until it never crosses (a jump
 *    from 0.5 to 4 nats over a history of 30: the threshold outruns the EWMA). The method also
 *    holds back training on outlier batches (tame.ts), which keeps their losses high until the
 *    shift is called.
 *  - On a shift the expert's EWMA goes back to its value at the last ordinary loss, so that a
 *    later return is judged against its settled level, not the climb.
 *  - `minHistory`: no threshold (Infinity: no shift, no outlier, no acceptance) until that many
 *    losses are recorded; a std of 2-3 losses means nothing.
 *  - `minStd`: a floor under the std, so an expert whose loss is almost constant (near 0) does
 *    not fire on a tiny fluctuation.
 */

export interface ShiftDetectorOptions {
  /** EWMA weight of the newest loss. */
  alpha: number;
  /** Recorded losses the statistics are computed from (the newest ones). */
  window: number;
  /** The threshold is mean + sigmas x std. */
  sigmas: number;
  /** No threshold before the history holds this many losses. */
  minHistory: number;
  /** Floor under the std used in the threshold. */
  minStd: number;
}

export const SHIFT_DETECTOR_DEFAULTS: ShiftDetectorOptions = {
  alpha: 0.2,
  window: 100,
  sigmas: 3,
  minHistory: 10,
  minStd: 0.05,
};

/** What one `observe` saw and decided. */
export interface Observation {
  loss: number;
  smoothed: number;
  /** The threshold the losses were compared with (Infinity while the history is short). */
  threshold: number;
  /** The smoothed loss is above the threshold. */
  shifted: boolean;
  /** The loss itself is above the threshold (not recorded). */
  outlier: boolean;
}

export class ShiftDetector {
  readonly options: ShiftDetectorOptions;
  /** Ring buffer of the last `window` recorded losses. */
  private readonly history: Float64Array;
  private count = 0;
  private next = 0;
  private ewma: number | undefined;
  /** The EWMA as of the last recorded (non-outlier) loss: where a left expert's EWMA goes back to. */
  private settled: number | undefined;
  /** Outlier losses since the last ordinary one: recorded if an ordinary loss follows, dropped at a shift. */
  private readonly pending: number[] = [];

  constructor(options: Partial<ShiftDetectorOptions> = {}) {
    const o = { ...SHIFT_DETECTOR_DEFAULTS, ...options };
    if (!(o.alpha > 0 && o.alpha <= 1)) throw new RangeError(`shift detector: alpha ${o.alpha} is not in (0, 1]`);
    if (!(Number.isInteger(o.window) && o.window >= 2)) throw new RangeError(`shift detector: window ${o.window} is not an integer >= 2`);
    if (!(Number.isInteger(o.minHistory) && o.minHistory >= 2 && o.minHistory <= o.window)) {
      throw new RangeError(`shift detector: minHistory ${o.minHistory} is not an integer in [2, window]`);
    }
    if (!(o.sigmas > 0) || !(o.minStd >= 0)) throw new RangeError('shift detector: sigmas must be > 0 and minStd >= 0');
    this.options = o;
    this.history = new Float64Array(o.window);
  }

  /** The current EWMA of the losses (undefined before the first one). */
  get smoothed(): number | undefined {
    return this.ewma;
  }

  /** Losses in the history (at most `window`). */
  get size(): number {
    return this.count;
  }

  /** mean + sigmas x max(std, minStd) of the history; Infinity while it holds fewer than `minHistory`. */
  threshold(): number {
    const n = this.count;
    if (n < this.options.minHistory) return Infinity;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += this.history[i]!;
    mean /= n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (this.history[i]! - mean) ** 2;
    const std = Math.sqrt(ss / (n - 1));
    return mean + this.options.sigmas * Math.max(std, this.options.minStd);
  }

  /**
   * One batch loss of the expert while it is the active one: updates the EWMA and tests it
   * against the threshold of the history so far; records the loss unless it is an outlier or
   * the shift fired.
   */
  observe(loss: number): Observation {
    if (!Number.isFinite(loss)) throw new RangeError(`shift detector: loss ${loss} is not finite`);
    this.ewma = this.continued(loss);
    const threshold = this.threshold();
    const shifted = this.ewma > threshold;
    const outlier = loss > threshold;
    const smoothed = this.ewma;
    if (shifted) {
      // The expert is left for another: the outliers were the new task's, and its EWMA goes back
      // to before the climb, so a later return is judged against its settled level.
      this.pending.length = 0;
      this.ewma = this.settled;
    } else if (outlier) {
      this.pending.push(loss);
      if (this.pending.length > this.options.window) this.pending.shift();
    } else {
      // An ordinary loss: the outliers before it were the stream's own tail, recorded now.
      for (const p of this.pending.splice(0)) this.record(p);
      this.record(loss);
      this.settled = this.ewma;
    }
    return { loss, smoothed, threshold, shifted, outlier };
  }

  /** The EWMA continued with `loss` (the loss itself before the first one); changes nothing. */
  continued(loss: number): number {
    return this.ewma === undefined ? loss : this.ewma + this.options.alpha * (loss - this.ewma);
  }

  /**
   * Whether a batch's loss is within the expert's own threshold (TAME's test for returning to an
   * old expert). The raw loss, not the EWMA continued with it: one loss moves the EWMA by alpha
   * of its distance only, so that test would accept losses up to 1/alpha = 5 times the
   * threshold, i.e. experts that never saw the task.
   */
  accepts(loss: number): boolean {
    return loss <= this.threshold();
  }

  /** The expert becomes the active one again: its EWMA continues with `loss` (the history stays). */
  resume(loss: number): void {
    this.ewma = this.settled = this.continued(loss);
    this.pending.length = 0;
  }

  /** Forgets the history and the EWMA (an expert repurposed for a new task when no expert can be added). */
  clear(): void {
    this.count = 0;
    this.next = 0;
    this.ewma = this.settled = undefined;
    this.pending.length = 0;
  }

  /** Bytes held (the history and the pending outliers, float64). */
  bytes(): number {
    return this.history.byteLength + 8 * this.pending.length;
  }

  private record(loss: number): void {
    this.history[this.next] = loss;
    this.next = (this.next + 1) % this.options.window;
    this.count = Math.min(this.count + 1, this.options.window);
  }
}
