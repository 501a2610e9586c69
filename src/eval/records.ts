/**
 * The result files' record types. One JSON Lines file per (scenario, method, seed):
 * `<out>/<scenario>/<method>/seed-<k>.jsonl` = a header line, one line per batch, a summary line.
 * A run is finished only when its summary is there (the file is written as `.partial` and
 * renamed after the summary), so readers can trust any `seed-<k>.jsonl` they find.
 */

export interface RunHeader {
  type: 'header';
  /** Bumped when a field changes meaning. */
  format: 'ctta-results/1';
  scenario: string;
  scenarioHash: string;
  method: string;
  /**
   * The run's name in folders and tables when it is a named variant of `method`
   * (`--methods knn1=lame`); absent when the name is the method's.
   */
  label?: string;
  /** Options after defaults were filled in. */
  methodOptions: Record<string, unknown>;
  seed: number;
  /** Table columns: domain names for CTTA scenarios, task names for incremental ones. */
  domains: string[];
  tasks: string[];
  backend: string;
  versions: Record<string, string>;
  ctta: string;
  node: string;
  startedAt: string;
}

export interface BatchRecord {
  type: 'batch';
  /** Batch number and its stream positions [start, end). */
  i: number;
  start: number;
  end: number;
  task: number;
  /** [domain index, images, correct] for each domain present in the batch (one, except in `mixed`). */
  perDomain: [number, number, number][];
  predictMs: number;
  adaptMs: number;
  /** Bytes held by tensors after the batch (tf.memory().numBytes). */
  tensorBytes: number;
  /** Process resident set size after the batch. */
  rss: number;
}

export interface RunSummary {
  type: 'summary';
  /** Images scored. */
  n: number;
  /** Error (1 - accuracy) per domain name, over the whole stream, in [0,1]. */
  errorPerDomain: Record<string, number>;
  /** Mean of errorPerDomain (the CTTA papers' table). */
  meanError: number;
  /** Errors over all images, in stream order (the online error). */
  onlineError: number;
  /** Expected calibration error, 15 equal-width confidence bins. */
  ece: number;
  /** OCL: A[i][j] = accuracy on task j's held-out set after finishing task i. */
  accuracyMatrix?: number[][];
  finalAverageAccuracy?: number;
  averageIncrementalAccuracy?: number;
  forgetting?: number;
  bwt?: number;
  peakTensorBytes: number;
  /** Memory the method holds beyond the model (its own stateBytes()). */
  methodStateBytes: number;
  imagesPerSecond: number;
  seconds: number;
  /** Tensors alive after the run minus before it: must be 0. */
  leakedTensors: number;
}

export type ResultRecord = RunHeader | BatchRecord | RunSummary;
