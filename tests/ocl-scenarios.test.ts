/**
 * The online continual-learning scenarios: models trained from scratch (a zoo architecture
 * initialised by the run's seed, head over the dataset's classes, identity independent of the
 * seed), long-tailed class-incremental streams, and the shipped OCL scenarios' task structure.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { openRun } from '../src/eval/run-setup.js';
import '../src/methods/index.js';
import { scratchModelHash } from '../src/models/scenario-model.js';
import { makeOrdering } from '../src/streams/orderings/index.js';
import { loadScenario, parseScenario } from '../src/streams/scenario.js';
import { expectCttaError, useWasm } from './helpers.js';

beforeAll(useWasm);

const CLEAN = [{ corruption: 'none', severity: 0 }];

const SCRATCH = {
  dataset: 'fashion-mnist',
  model: { arch: 'resnet8', init: 'scratch' },
  domains: [{ corruption: 'none' }],
  ordering: { name: 'class_incremental', params: { nTasks: 5, samplesPerTask: 20 } },
  batchSize: 10,
  heldOut: { fraction: 0.2 },
};

describe('models trained from scratch', () => {
  it('are built for the stream and the dataset, seeded by the run', async () => {
    const scenario = parseScenario(SCRATCH, '/tmp/scratch.json');
    const before = tf.memory().numTensors;
    const runs = await Promise.all([0, 0, 1].map((seed) => openRun({ scenario, method: 'er', seed })));
    try {
      const [a, b, c] = runs.map((r) => r.network);
      expect(a!.inputShape).toEqual([28, 28, 1]);
      expect(a!.numClasses).toBe(10);
      const first = (n: typeof a) => [...n!.namedWeights().values()][0]!.dataSync();
      expect(Array.from(first(a))).toEqual(Array.from(first(b)));
      expect(Array.from(first(a))).not.toEqual(Array.from(first(c)));
      // The identity is the architecture and options; the seed is the run's own field.
      expect(runs[0]!.header.modelHash).toBe(runs[2]!.header.modelHash);
      expect(runs[0]!.header.modelHash).toBe(scratchModelHash({ arch: 'resnet8', init: 'scratch', options: {} }));
      expect(scratchModelHash({ arch: 'resnet8', init: 'scratch', options: { width: 8 } })).not.toBe(runs[0]!.header.modelHash);
    } finally {
      for (const r of runs) r.dispose();
    }
    expect(tf.memory().numTensors).toBe(before); // disposing a run frees its scratch network
  });

  it('refuse an unknown architecture, options the run sets, and bad options, naming the field', async () => {
    await expectCttaError(() => parseScenario({ ...SCRATCH, model: { arch: 'resnet9', init: 'scratch' } }, 's.json'), /s\.json: model\.arch: "resnet9" is not a zoo architecture.*resnet18_reduced/);
    await expectCttaError(() => parseScenario({ ...SCRATCH, model: { arch: 'resnet8', init: 'scratch', options: { numClasses: 5 } } }, 's.json'), /model\.options\.numClasses is set by the run/);
    await expectCttaError(() => parseScenario({ ...SCRATCH, model: { arch: 'resnet8', init: 'scratch', options: { width: -1 } } }, 's.json'), /s\.json: model "resnet8": option width/);
    await expectCttaError(() => parseScenario({ ...SCRATCH, model: { arch: 'resnet8', init: 'pretrained' } }, 's.json'), /s\.json: model/);
  });

  it('enter the scenario hash with their options', () => {
    const a = parseScenario(SCRATCH).hash;
    const b = parseScenario({ ...SCRATCH, model: { arch: 'resnet8', init: 'scratch', options: { width: 8 } } }).hash;
    expect(a).not.toBe(b);
  });

  it('have no companion checkpoints (ViDA says why)', async () => {
    const scenario = parseScenario(SCRATCH, '/tmp/scratch.json');
    await expectCttaError(() => openRun({ scenario, method: 'vida', seed: 0 }), /vida needs a vida checkpoint .* trained from scratch/);
  });
});

describe('long-tailed class-incremental streams', () => {
  it('keep ratio^(i/(C-1)) of the i-th class of the order, and every held-out image', () => {
    const labels = new Int32Array(1000).map((_, i) => i % 10); // 100 images per class
    const order = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7];
    const params = { classOrder: order, classesPerTask: [5, 1, 1, 1, 1, 1], imbalanceRatio: 0.1 };
    const evalLabels = new Int32Array(200).map((_, i) => i % 10);
    const o = makeOrdering('class_incremental', { labels, classNames: [] }, CLEAN, params, 7, { labels: evalLabels, classNames: [] });
    const counts = new Array(10).fill(0);
    for (const i of o.order) counts[labels[i]!]++;
    order.forEach((c, i) => expect(counts[c]).toBe(Math.round(100 * 0.1 ** (i / 9))));
    expect(o.tasks.map((t) => t.evalIndices!.length)).toEqual([100, 20, 20, 20, 20, 20]);
    // Without the ratio every image streams.
    const full = makeOrdering('class_incremental', { labels, classNames: [] }, CLEAN, { classOrder: order, classesPerTask: [5, 1, 1, 1, 1, 1] }, 7);
    expect(full.order.length).toBe(1000);
  });
});

describe('the shipped OCL scenarios', () => {
  it('parse, and give the tasks they describe', async () => {
    const fromScratch = loadScenario('fmnist-class-incremental');
    expect(fromScratch.model).toEqual({ arch: 'resnet18_reduced', init: 'scratch', options: {} });
    const base = loadScenario('fmnist-base5-incremental');
    const labels = new Int32Array(100).map((_, i) => i % 10);
    const o = makeOrdering(base.ordering.name, { labels, classNames: [] }, CLEAN, base.ordering.params, 0);
    expect(o.tasks.map((t) => t.classes)).toEqual([[0, 1, 2, 3, 4], [5], [6], [7], [8], [9]]);
    const imbalanced = loadScenario('fmnist-class-incremental-imbalanced');
    expect(imbalanced.ordering.params).toMatchObject({ imbalanceRatio: 0.1 });
    for (const name of ['cifar10-class-incremental', 'cifar100-class-incremental']) expect(loadScenario(name).split).toBe('train');
  });
});
