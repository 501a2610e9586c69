/**
 * The result files' records: the one definition of the format, as zod schemas that the writer
 * (result-writer.ts) checks before writing and the reader (../report/results.ts) checks after
 * reading. One JSON Lines file per (scenario, method, seed):
 * `<out>/<scenario>/<method>/seed-<k>.jsonl` = a header line, one line per batch, a summary line.
 * A run is finished only when its summary is there (the file is written as `.partial` and
 * renamed after the summary), so readers can trust any `seed-<k>.jsonl` they find.
 *
 * The schemas are loose objects: fields they do not know pass through, so a newer writer that
 * records more does not break an older reader. A field that changes meaning bumps `format`.
 */
import { z } from 'zod';

export const RESULTS_FORMAT = 'ctta-results/1';

// zod 4's z.number() already refuses NaN and ±Infinity (JSON would turn them into null).
const num = z.number();
const count = z.number().int().nonnegative();
/** Diagnostic and state part names become table columns and plot titles: keep them plain identifiers. */
export const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const runHeaderShape = {
  type: z.literal('header'),
  /** Bumped when a field changes meaning. */
  format: z.literal(RESULTS_FORMAT),
  scenario: z.string().min(1),
  scenarioHash: z.string(),
  method: z.string().min(1),
  /**
   * The run's name in folders and tables when it is a named variant of `method`
   * (`--methods knn1=lame`); absent when the name is the method's.
   */
  label: z.string().min(1).optional(),
  /** Options after defaults were filled in. */
  methodOptions: z.record(z.string(), z.unknown()),
  /**
   * The model checkpoint the run started from: sha256 over its model.json, weights and adapters
   * (checkpoint.ts). Part of the run's identity; absent in files of older ctta versions.
   */
  modelHash: z.string().optional(),
  /**
   * Companion checkpoints the method loaded (ViDA's warmed-up adapters), by kind: the path the
   * method asked for (absent: `<model>-<kind>`) and its model hash. Part of the identity.
   */
  companions: z.record(z.string(), z.object({ path: z.string().optional(), hash: z.string() })).optional(),
  /** What the user should know about how the numbers were computed (e.g. a class-subset model). */
  warnings: z.array(z.string()).optional(),
  seed: count,
  /** Table columns: domain names for CTTA scenarios, task names for incremental ones. */
  domains: z.array(z.string()),
  tasks: z.array(z.string()),
  backend: z.string(),
  /** wasm threads (`--threads`); absent: 1. Describes the run, not part of its identity: results are identical. */
  threads: z.number().int().positive().optional(),
  versions: z.record(z.string(), z.string()),
  ctta: z.string(),
  node: z.string(),
  startedAt: z.string(),
};

const batchRecordShape = {
  type: z.literal('batch'),
  /** Batch number and its stream positions [start, end). */
  i: count,
  start: count,
  end: count,
  task: count,
  /** [domain index, images, correct] for each domain present in the batch (one, except in `mixed`). */
  perDomain: z.array(z.tuple([count, count, count])),
  predictMs: num,
  adaptMs: num,
  /** Bytes held by tensors after the batch (tf.memory().numBytes). */
  tensorBytes: count,
  /** Process resident set size after the batch. */
  rss: count,
  /**
   * Scalars the method reports for this batch, by name (e.g. EATA `selected`, SAR `recovered`
   * as 0/1); finite numbers only. Absent for methods that report none, and in older files.
   */
  diagnostics: z
    .record(z.string().regex(COLUMN_NAME, 'a diagnostic name must be an identifier (letters, digits, _)'), num)
    .optional(),
  /**
   * Anytime evaluation (scenario `heldOut.every`): after this batch, the held-out sets of the
   * tasks seen so far (the current one included) were scored, [task index, images, correct] per
   * task; their pooled accuracy is one evaluation point. Only on the batches it followed.
   */
  anytime: z.array(z.tuple([count, count, count])).optional(),
};

const runSummaryShape = {
  type: z.literal('summary'),
  /** Images scored. */
  n: count,
  /** Error (1 - accuracy) per domain name, over the whole stream, in [0,1]. */
  errorPerDomain: z.record(z.string(), num),
  /** Mean of errorPerDomain (the CTTA papers' table). */
  meanError: num,
  /** Errors over all images, in stream order (the online error). */
  onlineError: num,
  /** Expected calibration error, 15 equal-width confidence bins. */
  ece: num,
  /** OCL: A[i][j] = accuracy on task j's held-out set after finishing task i. */
  accuracyMatrix: z.array(z.array(num)).optional(),
  finalAverageAccuracy: num.optional(),
  averageIncrementalAccuracy: num.optional(),
  forgetting: num.optional(),
  /** Forgetting as Mai et al.'s OCL code computes it (eval/metrics.ts); absent in older files. */
  legacyForgetting: num.optional(),
  bwt: num.optional(),
  /** Mean over the anytime evaluation points of their pooled accuracy (scenario `heldOut.every`). */
  averageAnytimeAccuracy: num.optional(),
  peakTensorBytes: num,
  /** Memory the method holds beyond the model (its own stateBytes()). */
  methodStateBytes: num,
  /**
   * The largest value of each part of the method's state over the run (its `stateParts()`,
   * sampled after every batch), e.g. `{ buffer, optimizer }`; parts peak at different times,
   * so they need not add up to `methodStateBytes`. Absent for methods that report no parts.
   */
  peakStateParts: z.record(z.string().regex(COLUMN_NAME, 'a state part name must be an identifier (letters, digits, _)'), z.number().nonnegative()).optional(),
  imagesPerSecond: num,
  seconds: num,
  /** Tensors alive after the run minus before it: must be 0. */
  leakedTensors: z.number().int(),
};

export const runHeaderSchema = z.looseObject(runHeaderShape);
export const batchRecordSchema = z.looseObject(batchRecordShape);
export const runSummarySchema = z.looseObject(runSummaryShape);
export const resultRecordSchema = z.discriminatedUnion('type', [runHeaderSchema, batchRecordSchema, runSummarySchema]);

// The types are inferred from the same shapes, but without the loose objects' index signature
// ([key: string]: unknown): with it, a misspelt optional field (`lable`) would type-check.
export type RunHeader = z.output<z.ZodObject<typeof runHeaderShape>>;
export type BatchRecord = z.output<z.ZodObject<typeof batchRecordShape>>;
export type RunSummary = z.output<z.ZodObject<typeof runSummaryShape>>;
export type ResultRecord = RunHeader | BatchRecord | RunSummary;

/** A failed check as one phrase: `field "perDomain.0.1": Invalid input: expected number, received string`. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const field = issue.path.length ? `field "${issue.path.map(String).join('.')}"` : 'record';
  // A bad record key (a diagnostic name) nests the reason one level down.
  const nested = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
  return `${field}: ${nested ?? issue.message}`;
}
