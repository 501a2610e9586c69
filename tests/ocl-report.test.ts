// Online continual learning metrics and reports: anytime evaluation and state parts in the
// runner (with a fake method whose every accuracy is known in advance), the OCL table layout,
// and the accuracy-matrix heatmap. Every expected number is worked out by hand in the comments.
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { plotCommand } from '../src/cli/commands/plot.js';
import { tableCommand } from '../src/cli/commands/table.js';
import { matrixMetrics } from '../src/eval/metrics.js';
import { runScenario } from '../src/eval/runner.js';
import { registerMethod } from '../src/methods/index.js';
import type { AdaptationMethod } from '../src/methods/types.js';
import { plotRuns, renderSvg } from '../src/report/plot.js';
import { readResults, type FinishedRun } from '../src/report/results.js';
import { formatCell, formatCsv, formatMarkdown, summarize } from '../src/report/table.js';
import { loadFashionMnist } from '../src/streams/datasets/fashion-mnist.js';
import { registerDataset } from '../src/streams/datasets/index.js';
import { parseScenario } from '../src/streams/scenario.js';
import { openStream } from '../src/streams/stream.js';
import { expectCttaError, ROOT, runCommand, useWasm } from './helpers.js';
import { batch, header, summary, write } from './result-files.js';

const MIB = 1024 * 1024;
const tmp = () => mkdtempSync(join(tmpdir(), 'ctta-ocl-'));

// ---------------------------------------------------------------------------------------------
// The fake: a dataset whose every pixel of an image is 20 x its label (so a method can read the
// label off the image), and a method that knows only the classes of the last batch it adapted on
// and answers the class it reads if it knows it, else the next class (always wrong). With one
// class per task, after any batch of task t it knows exactly task t's class: accuracy 1 on
// task t's held-out images and 0 on every other task's.

const PIXEL_STEP = 20;

function labelCoded(): Promise<import('../src/streams/datasets/types.js').ImageDataset> {
  return loadFashionMnist('test', { allowDownload: false }).then((ds) => {
    const size = ds.height * ds.width * ds.channels;
    const images = new Uint8Array(ds.n * size);
    for (let i = 0; i < ds.n; i++) images.fill(ds.labels[i]! * PIXEL_STEP, i * size, (i + 1) * size);
    return { ...ds, name: 'label-coded', images };
  });
}

interface FakeOptions extends Record<string, unknown> {
  /** What stateParts() returns after the 1st adapt (to test the checks), else the regular parts. */
  badParts?: unknown;
}

class LastBatchClasses implements AdaptationMethod {
  readonly name = 'last-batch-classes';
  readonly usesLabels = true;
  readonly labelSpace = 'dataset' as const;
  private known = new Set<number>();
  private adapts = 0;

  constructor(readonly options: FakeOptions) {}

  async init(): Promise<void> {}

  private async answer(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const first = tf.tidy(() => x.slice([0, 0, 0, 0], [-1, 1, 1, 1]).reshape([-1]));
    const values = await first.data();
    first.dispose();
    const answers = Array.from(values, (v) => {
      const label = Math.round((v * 255) / PIXEL_STEP);
      return this.known.has(label) ? label : (label + 1) % 10;
    });
    return tf.tidy(() => tf.oneHot(tf.tensor1d(answers, 'int32'), 10).toFloat() as tf.Tensor2D);
  }

  predict(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return this.answer(x);
  }

  evaluate(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    return this.answer(x);
  }

  async adapt(_x: tf.Tensor4D, y?: tf.Tensor1D): Promise<void> {
    this.known = new Set(await y!.data());
    this.adapts++;
  }

  stateBytes(): number {
    return 100 * this.adapts;
  }

  // buffer grows with every batch (peak = the last value); scratch is large only after the 2nd
  // batch (peak = that value, not the last one).
  stateParts(): Record<string, number> {
    if (this.options.badParts !== undefined && this.adapts === 1) return this.options.badParts as Record<string, number>;
    return { buffer: 100 * this.adapts, scratch: this.adapts === 2 ? 4096 : 0 };
  }

  async reset(): Promise<void> {
    this.known = new Set();
  }

  dispose(): void {}
}

/** 3 tasks of one class each (classes 0, 1, 2), 40 images per task in batches of 10; 5% held out. */
function fakeScenario(heldOut: Record<string, unknown>) {
  return parseScenario(
    {
      name: 'label-coded-ci',
      dataset: 'label-coded',
      model: join(ROOT, 'models/fmnist-resnet8'),
      domains: [{ corruption: 'none' }],
      ordering: { name: 'class_incremental', params: { nTasks: 3, classOrder: [0, 1, 2], samplesPerTask: 40 } },
      heldOut,
      batchSize: 10,
    },
    'label-coded-ci.json',
  );
}

beforeAll(async () => {
  await useWasm();
  registerDataset({ name: 'label-coded', load: () => labelCoded(), defaults: 'fashion-mnist' });
  registerMethod<FakeOptions>({
    name: 'last-batch-classes',
    description: 'knows the classes of its last batch (test fake)',
    usesLabels: true,
    options: { parse: (o) => ({ ...(o as FakeOptions) }) },
    create: (o) => new LastBatchClasses(o),
  });
});

describe('scenario heldOut.every', () => {
  const raw = {
    dataset: 'fashion-mnist',
    model: 'models/fmnist-resnet8',
    domains: [{ corruption: 'none' }],
    ordering: { name: 'class_incremental', params: { nTasks: 5 } },
    heldOut: { fraction: 0.2 },
    batchSize: 10,
  };

  it('enters the scenario hash only when set (runs on disk keep their identity)', () => {
    // The hash ctta computed for this scenario before `every` existed.
    expect(parseScenario(raw).hash).toBe('31eeed3fc59f56f6df429ece4336a8668f6f4950654cd0afc3ddb5f3d6a44a2b');
    const five = parseScenario({ ...raw, heldOut: { fraction: 0.2, every: 5 } });
    expect(five.heldOut).toEqual({ fraction: 0.2, every: 5 });
    expect(five.hash).not.toBe(parseScenario(raw).hash);
    expect(parseScenario({ ...raw, heldOut: { fraction: 0.2, every: 6 } }).hash).not.toBe(five.hash);
  });

  it('is a whole number of batches >= 1', async () => {
    await expectCttaError(() => parseScenario({ ...raw, heldOut: { fraction: 0.2, every: 0 } }, 'x.json'), /x\.json: heldOut\.every: expected a number of batches >= 1/);
    await expectCttaError(() => parseScenario({ ...raw, heldOut: { fraction: 0.2, every: 2.5 } }, 'x.json'), /x\.json: heldOut\.every: expected a whole number of batches/);
  });
});

describe('runner: anytime evaluation and state parts', () => {
  it('scores the seen tasks every k batches, pooled over images; the matrix and the stream are unchanged by it', async () => {
    const out = tmp();
    const scenario = fakeScenario({ fraction: 0.05, every: 3 });
    const r = await runScenario({ scenario, method: 'last-batch-classes', seed: 0, out });
    // Held-out images per task (seeded): unequal, so pooling differs from averaging the tasks.
    const stream = await openStream(scenario, 0);
    const [n0, n1, n2] = stream.ordering.tasks.map((t) => t.evalIndices!.length) as [number, number, number];
    expect(new Set([n0, n1, n2]).size).toBeGreaterThan(1);
    expect(n0 + n1 + n2).toBeGreaterThan(0);

    // 12 batches, 4 per task; points after batches 2 (task 0), 5 (task 1), 8 and 11 (task 2).
    expect(r.batches).toHaveLength(12);
    expect(r.batches.filter((b) => b.anytime).map((b) => b.i)).toEqual([2, 5, 8, 11]);
    const at = (i: number) => r.batches[i]!.anytime;
    expect(at(2)).toEqual([[0, n0, n0]]);
    expect(at(5)).toEqual([[0, n0, 0], [1, n1, n1]]);
    expect(at(8)).toEqual([[0, n0, 0], [1, n1, 0], [2, n2, n2]]);
    expect(at(11)).toEqual(at(8));
    const points = [1, n1 / (n0 + n1), n2 / (n0 + n1 + n2), n2 / (n0 + n1 + n2)];
    expect(r.summary.averageAnytimeAccuracy).toBeCloseTo((points[0]! + points[1]! + points[2]! + points[3]!) / 4, 12);

    // After task i it knows only task i's class: the identity matrix.
    expect(r.summary.accuracyMatrix).toEqual([[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
    expect(r.summary.finalAverageAccuracy).toBeCloseTo(1 / 3, 12);
    expect(r.summary.forgetting).toBe(1); // tasks 0 and 1: 1 - 0
    expect(r.summary.legacyForgetting).toBeCloseTo(2 / 3, 12); // (1 + 1 + 0) / 3
    expect(r.summary.bwt).toBe(-1);
    expect(r.summary.averageIncrementalAccuracy).toBeCloseTo((1 + 1 / 2 + 1 / 3) / 3, 12);
    // Stream: each task's first batch is answered with the previous class (wrong), the rest right.
    expect(r.summary.onlineError).toBeCloseTo(30 / 120, 12);

    // buffer peaks at its last value (12 adapts x 100), scratch at the 2nd batch's 4096.
    expect(r.summary.peakStateParts).toEqual({ buffer: 1200, scratch: 4096 });
    expect(r.summary.methodStateBytes).toBe(1200);

    // The file holds the same records, and reads back.
    const [run] = await readResults(out);
    expect(run!.batches.map((b) => b.anytime)).toEqual(r.batches.map((b) => b.anytime));
    expect(run!.summary).toEqual(r.summary);

    // Without `every`: no points, no field, and the same predictions and matrix (evaluate
    // changes no state).
    const plain = await runScenario({ scenario: fakeScenario({ fraction: 0.05 }), method: 'last-batch-classes', seed: 0 });
    expect(plain.summary.averageAnytimeAccuracy).toBeUndefined();
    expect(plain.batches.some((b) => 'anytime' in b)).toBe(false);
    expect(Array.from(plain.predictions)).toEqual(Array.from(r.predictions));
    expect(plain.summary.accuracyMatrix).toEqual(r.summary.accuracyMatrix);
  });

  it('the OCL table of a real run shows its anytime accuracy and state parts', async () => {
    const out = tmp();
    const scenario = fakeScenario({ fraction: 0.05, every: 3 });
    const r = await runScenario({ scenario, method: 'last-batch-classes', seed: 0, out });
    const [row] = summarize(await readResults(out));
    const cells = Object.fromEntries(row!.cells.map((c) => [c.column, formatCell(c)]));
    expect(row!.kind).toBe('ocl');
    expect(cells).toMatchObject({
      'avg acc': '33.3',
      forgetting: '100.0',
      'legacy forgetting': '66.7',
      'avg inc acc': '61.1', // 11/18
      BWT: '-100.0',
      'anytime acc': (100 * r.summary.averageAnytimeAccuracy!).toFixed(1),
      'task-0': '0.0',
      'task-1': '0.0',
      'task-2': '100.0',
      'buffer peak MiB': '0.00',
      'scratch peak MiB': '0.00',
    });
  });

  it('a bad stateParts() fails the run naming the method, the batch and the value', async () => {
    const scenario = fakeScenario({ fraction: 0.05 });
    const run = (badParts: unknown) => runScenario({ scenario, method: 'last-batch-classes', methodOptions: { badParts }, seed: 0 });
    await expectCttaError(() => run({ buffer: Number.NaN }), /method "last-batch-classes" returned NaN bytes for part "buffer" from stateParts\(\) at batch 0/);
    await expectCttaError(() => run({ buffer: -1 }), /returned -1 bytes for part "buffer"/);
    await expectCttaError(() => run({ 'buffer MiB': 1 }), /a part named "buffer MiB" \(not an identifier\)/);
    await expectCttaError(() => run([1, 2]), /returned an array from stateParts\(\)/);
  });
});

// ---------------------------------------------------------------------------------------------
// Tables and heatmaps from hand-made result files.

/**
 * Scenario "ocl" (tasks t0, t1): variants er-m100 (3 seeds) and er-m200 (2 seeds) of method er.
 * Per seed: matrix, anytime accuracy. Metrics (%), by hand:
 *   er-m100 s0 [[.8, 0], [.5, .9]]:  avg 70, forgetting 30, legacy (30 + 0)/2 = 15, inc (80 + 70)/2 = 75, BWT -30, anytime 60
 *           s1 [[.9, .1], [.6, .8]]: avg 70, forgetting 30, legacy 15, inc (90 + 70)/2 = 80, BWT -30, anytime 70
 *           s2 [[.7, 0], [.6, .9]]:  avg 75, forgetting 10, legacy 5, inc (70 + 75)/2 = 72.5, BWT -10, anytime 80
 *             (s2's file predates legacyForgetting: the table computes it from the matrix)
 *   er-m200 s0 [[.9, 0], [.8, .9]]:  avg 85, forgetting 10, legacy 5, inc (90 + 85)/2 = 87.5, BWT -10, anytime 75
 *           s1 [[.9, .2], [.9, .6]]: avg 75, forgetting 0, legacy 0 (task 1: max(.2, .6) - .6), inc (90 + 75)/2 = 82.5, BWT 0, anytime 65
 * 3 seeds: ± = t(0.975, 2) * std / sqrt 3 = 4.3027 * std / sqrt 3; 2 seeds: ± = std.
 *   er-m100 avg [70, 70, 75]: 71.7, std 2.887 -> 7.2;  forgetting [30, 30, 10]: 23.3, std 11.547 -> 28.7
 *           legacy [15, 15, 5]: 11.7 ± 14.3;  inc [75, 80, 72.5]: 75.8, std 3.819 -> 9.5;  BWT -23.3 ± 28.7
 *           anytime [60, 70, 80]: 70.0, std 10 -> 24.8;  t0 [50, 60, 60]: 56.7 ± 14.3;  t1 [90, 80, 90]: 86.7 ± 14.3
 *   er-m200 avg [85, 75]: 80.0 ± 7.1;  forgetting [10, 0]: 5.0 ± 7.1;  legacy [5, 0]: 2.5 ± 3.5;  inc [87.5, 82.5]: 85.0 ± 3.5
 *           BWT [-10, 0]: -5.0 ± 7.1;  anytime [75, 65]: 70.0 ± 7.1;  t0 [80, 90]: 85.0 ± 7.1;  t1 [90, 60]: 75.0 ± 21.2
 * State: er-m100 1 MiB, parts {buffer: 1 MiB}; er-m200 2 MiB, parts {buffer: 2 MiB, optimizer: 0.5 MiB}.
 */
const OCL_RUNS: [string, number, number[][], number, boolean][] = [
  ['er-m100', 0, [[0.8, 0], [0.5, 0.9]], 0.6, true],
  ['er-m100', 1, [[0.9, 0.1], [0.6, 0.8]], 0.7, true],
  ['er-m100', 2, [[0.7, 0], [0.6, 0.9]], 0.8, false],
  ['er-m200', 0, [[0.9, 0], [0.8, 0.9]], 0.75, true],
  ['er-m200', 1, [[0.9, 0.2], [0.9, 0.6]], 0.65, true],
];

let dir: string;
let runs: FinishedRun[];

beforeAll(async () => {
  dir = tmp();
  for (const [label, seed, A, anytime, legacy] of OCL_RUNS) {
    const { legacyForgetting, ...metrics } = matrixMetrics(A);
    const m200 = label === 'er-m200';
    write(dir, header('ocl', 'er', seed, label, ['clean'], ['t0', 't1']), [batch(0, 0), batch(1, 1)], summary({
      accuracyMatrix: A, ...metrics, ...(legacy ? { legacyForgetting } : {}), averageAnytimeAccuracy: anytime,
      methodStateBytes: (m200 ? 2 : 1) * MIB, peakStateParts: m200 ? { optimizer: 0.5 * MIB, buffer: 2 * MIB } : { buffer: MIB },
    }));
  }
  // A CTTA scenario: one method reports parts, the other none.
  write(dir, header('tta', 'source', 0, undefined, ['fog'], ['all']), [batch(0, 0)], summary({ errorPerDomain: { fog: 0.4 }, meanError: 0.4 }));
  write(dir, header('tta', 'cotta', 0, undefined, ['fog'], ['all']), [batch(0, 0)], summary({
    errorPerDomain: { fog: 0.3 }, meanError: 0.3, methodStateBytes: 3 * MIB, peakStateParts: { teacher: 3 * MIB },
  }));
  runs = await readResults(dir);
});

const OCL_MD = `### ocl: accuracy-matrix metrics (%) and accuracy (%) per task after the last task, mean over seeds

| method  | seeds |    avg acc |  forgetting | legacy forgetting | avg inc acc |          BWT | anytime acc |          t0 |          t1 |   state MiB | buffer peak MiB | optimizer peak MiB |
| :------ | ----: | ---------: | ----------: | ----------------: | ----------: | -----------: | ----------: | ----------: | ----------: | ----------: | --------------: | -----------------: |
| er-m100 |     3 | 71.7 ± 7.2 | 23.3 ± 28.7 |       11.7 ± 14.3 |  75.8 ± 9.5 | -23.3 ± 28.7 | 70.0 ± 24.8 | 56.7 ± 14.3 | 86.7 ± 14.3 | 1.00 ± 0.00 |     1.00 ± 0.00 |                  - |
| er-m200 |     2 | 80.0 ± 7.1 |   5.0 ± 7.1 |         2.5 ± 3.5 |  85.0 ± 3.5 |   -5.0 ± 7.1 |  70.0 ± 7.1 |  85.0 ± 7.1 | 75.0 ± 21.2 | 2.00 ± 0.00 |     2.00 ± 0.00 |        0.50 ± 0.00 |

avg acc: final average accuracy over all tasks; forgetting: best earlier accuracy minus final, mean over all tasks but the last; legacy forgetting: as Mai et al.'s OCL code (used by OnPro, OCM) computes it, best over all evaluations minus final, mean over all tasks; avg inc acc: average incremental accuracy; BWT: final minus just-learned accuracy, mean over all tasks but the last; anytime acc: accuracy on the held-out images of the tasks seen so far every heldOut.every batches, mean over the stream.

± is the standard deviation for 2 seeds and the half-width of the 95% Student-t confidence interval for 3 or more.
`;

const TTA_MD = `### tta: error (%) per domain, mean over seeds

| method | seeds |  fog | mean | img/s | peak MiB | state MiB | teacher peak MiB |
| :----- | ----: | ---: | ---: | ----: | -------: | --------: | ---------------: |
| source |     1 | 40.0 | 40.0 |   100 |     1.00 |      0.00 |                - |
| cotta  |     1 | 30.0 | 30.0 |   100 |     1.00 |      3.00 |             3.00 |
`;

describe('OCL table layout', () => {
  it('one row per variant label: metrics, anytime, final accuracy per task, state and its parts; mean ± spread over seeds', () => {
    const rows = summarize(runs, { scenario: 'ocl' });
    expect(rows.map((r) => [r.method, r.kind, r.seeds])).toEqual([['er-m100', 'ocl', [0, 1, 2]], ['er-m200', 'ocl', [0, 1]]]);
    const m100 = rows[0]!.cells;
    const get = (column: string) => m100.find((c) => c.column === column)!.stat!;
    expect(get('avg acc').mean).toBeCloseTo(215 / 3, 10);
    expect(get('avg acc').ci95).toBeCloseTo((4.3027 * Math.sqrt(25 / 3)) / Math.sqrt(3), 10);
    expect(get('legacy forgetting').mean).toBeCloseTo(35 / 3, 10); // s2 from its matrix
    expect(get('anytime acc').std).toBeCloseTo(10, 10);
    expect(formatMarkdown(rows)).toBe(OCL_MD);
  });

  it('a run cut before the last task (--limit): the tasks it never reached have no final accuracy ("-"), not 0', async () => {
    const cut = tmp();
    // One task of three finished: the held-out sets of the other two were scored (classes not yet learned: 0).
    write(cut, header('cut', 'er', 0, undefined, ['clean'], ['t0', 't1', 't2']), [batch(0, 0)], summary({ accuracyMatrix: [[0.6, 0, 0]], ...matrixMetrics([[0.6, 0, 0]]) }));
    const [row] = summarize(await readResults(cut), { scenario: 'cut' });
    expect(row!.cells.filter((c) => c.task !== undefined).map((c) => [c.column, c.stat?.mean ?? null])).toEqual([['t0', 60], ['t1', null], ['t2', null]]);
    expect(row!.cells.find((c) => c.column === 'avg acc')!.stat!.mean).toBeCloseTo(60, 10);
  });

  it('chosen per scenario: CTTA scenarios keep their layout (parts columns only when some run has parts)', () => {
    const rows = summarize(runs);
    expect(rows.map((r) => `${r.scenario}/${r.method}/${r.kind}`)).toEqual(['ocl/er-m100/ocl', 'ocl/er-m200/ocl', 'tta/source/ctta', 'tta/cotta/ctta']);
    expect(formatMarkdown(rows.slice(2))).toBe(TTA_MD);
    // No parts anywhere: the CTTA columns exactly as before.
    expect(summarize(runs, { scenario: 'tta', methods: ['source'] })[0]!.cells.map((c) => c.column)).toEqual(['fog', 'mean', 'img/s', 'peak MiB', 'state MiB']);
  });

  it('CSV: one column per metric and task, with std (2 seeds) and ci95 (3 seeds)', () => {
    const csv = formatCsv(summarize(runs, { scenario: 'ocl' }), { rounded: true }).split('\n');
    expect(csv[0]).toBe(
      'scenario,kind,method,seeds,avg acc,avg acc std,avg acc ci95,forgetting,forgetting std,forgetting ci95,legacy forgetting,legacy forgetting std,legacy forgetting ci95,' +
        'avg inc acc,avg inc acc std,avg inc acc ci95,BWT,BWT std,BWT ci95,anytime acc,anytime acc std,anytime acc ci95,t0,t0 std,t0 ci95,t1,t1 std,t1 ci95,' +
        'state MiB,state MiB std,state MiB ci95,buffer peak MiB,buffer peak MiB std,buffer peak MiB ci95,optimizer peak MiB,optimizer peak MiB std,optimizer peak MiB ci95',
    );
    // std of [70, 70, 75] = 2.887; of [30, 30, 10] = 11.547; of [75, 80, 72.5] = 3.819; [50, 60, 60] and [90, 80, 90]: 5.774
    expect(csv[1]).toBe(
      'ocl,ocl,er-m100,3,71.7,2.9,7.2,23.3,11.5,28.7,11.7,5.8,14.3,75.8,3.8,9.5,-23.3,11.5,28.7,70.0,10.0,24.8,56.7,5.8,14.3,86.7,5.8,14.3,1.00,0.00,0.00,1.00,0.00,0.00,,,',
    );
    // 2 seeds: ci95 = t(0.975, 1) * std / sqrt 2 = 12.7062 / 1.4142 * std: 7.071 -> 63.5, 3.536 -> 31.8, 21.213 -> 190.6
    expect(csv[2]).toBe('ocl,ocl,er-m200,2,80.0,7.1,63.5,5.0,7.1,63.5,2.5,3.5,31.8,85.0,3.5,31.8,-5.0,7.1,63.5,70.0,7.1,63.5,85.0,7.1,63.5,75.0,21.2,190.6,2.00,0.00,0.00,2.00,0.00,0.00,0.50,0.00,0.00');
  });

  it('layout ocl without matrices, and a scenario mixing runs with and without: errors naming what to do', async () => {
    await expectCttaError(() => summarize(runs, { scenario: 'tta', layout: 'ocl' }), /runs of scenario tta have no accuracy matrix.*--layout ctta/);
    expect(summarize(runs, { scenario: 'ocl', layout: 'ctta' }).map((r) => r.kind)).toEqual(['ctta', 'ctta']);
    const mixed = tmp();
    write(mixed, header('ocl', 'er', 0, undefined, ['clean'], ['t0']), [batch(0, 0)], summary({ accuracyMatrix: [[0.5]], ...matrixMetrics([[0.5]]) }));
    write(mixed, header('ocl', 'source', 0, undefined, ['clean'], ['t0']), [batch(0, 0)], summary({}));
    const both = await readResults(mixed);
    await expectCttaError(() => summarize(both), /er[\\/]seed-0\.jsonl has an accuracy matrix and .*source[\\/]seed-0\.jsonl has none, for the same scenario.*--layout ctta/);
    expect(summarize(both, { layout: 'ctta' })).toHaveLength(2);
  });
});

describe('accuracy-matrix heatmap', () => {
  it('one panel per variant, cells labelled with the mean over seeds, tasks not yet trained on greyed', async () => {
    const svg = await renderSvg(plotRuns(runs, { scenario: 'ocl', kind: 'matrix' }));
    const count = (what: string) => svg.split(what).length - 1;
    expect(count('aria-roledescription="rect mark"')).toBe(2 * 4);
    // One cell above the diagonal per panel (t1 after t0): grey, its label grey too.
    expect(count('fill="#e6e6e6"')).toBe(2);
    expect(count('fill="#8c8c8c"')).toBe(2);
    for (const grey of svg.match(/<[^>]*fill="#(e6e6e6|8c8c8c)"[^>]*>/g)!) expect(grey).toContain('evaluated on: t1; after training on: t0;');
    for (const label of ['er-m100', 'er-m200', 't0', 't1']) expect(svg).toContain(`>${label}</text>`);
    // er-m100: A[1][0] = (50 + 60 + 60) / 3, A[0][1] = (0 + 10 + 0) / 3; er-m200: A[1][1] = (90 + 60) / 2
    for (const value of ['56.7', '3.3', '75.0', '90.0']) expect(svg).toContain(`>${value}</text>`);
  });

  it('domains plot of OCL runs: bars of the final accuracy per task and the average', async () => {
    const spec = plotRuns(runs, { scenario: 'ocl', kind: 'domains' }) as unknown as { data: { values: { method: string; column: string; value: number }[] } };
    expect(spec.data.values.map((v) => `${v.method}:${v.column}`)).toEqual([
      'er-m100:avg acc', 'er-m100:t0', 'er-m100:t1', 'er-m200:avg acc', 'er-m200:t0', 'er-m200:t1',
    ]);
    const svg = await renderSvg(plotRuns(runs, { scenario: 'ocl', kind: 'domains' }));
    expect(svg.split('aria-roledescription="bar"').length - 1).toBe(2 * 3);
  });
});

/** What a command prints, stdout and errors together (errors make the comparisons fail). */
async function cli(command: Parameters<typeof runCommand>[0], args: string[]): Promise<string> {
  const { out, err } = await runCommand(command, args);
  return out + err;
}

describe('CLI', () => {
  it('table --layout (auto by default) and plot --kind matrix', async () => {
    expect(await cli(tableCommand(), [dir, '--scenario', 'ocl'])).toBe(OCL_MD);
    expect(await cli(tableCommand(), [dir, '--scenario', 'ocl', '--layout', 'ocl'])).toBe(OCL_MD);
    expect(await cli(tableCommand(), [dir, '--scenario', 'ocl', '--layout', 'ctta'])).toBe(formatMarkdown(summarize(runs, { scenario: 'ocl', layout: 'ctta' })));
    await expectCttaError(() => cli(tableCommand(), [dir, '--scenario', 'tta', '--layout', 'ocl']), /no accuracy matrix/);
    await expectCttaError(() => cli(tableCommand(), [dir, '--diagnostics', '--layout', 'ocl']), /--layout .*--diagnostics.*fix: drop one of them/);
    await expect(cli(tableCommand(), [dir, '--layout', 'wide'])).rejects.toThrow(/--layout must be one of auto, ctta, ocl/);
    const svg = join(tmp(), 'matrix.svg');
    await cli(plotCommand(), [dir, '--scenario', 'ocl', '--kind', 'matrix', '--out', svg]);
    expect(readFileSync(svg, 'utf8')).toContain('fill="#e6e6e6"');
    expect(tableCommand().helpInformation()).toContain('--layout');
  });
});
