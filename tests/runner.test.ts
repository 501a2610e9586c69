import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runScenario } from '../src/eval/runner.js';
import { parseMethodEntry, planSweep, runSweep } from '../src/eval/sweep.js';
import { createMethod } from '../src/methods/index.js';
import { readResults } from '../src/report/results.js';
import { summarize } from '../src/report/table.js';
import { loadScenario, parseScenario } from '../src/streams/scenario.js';
import { openStream } from '../src/streams/stream.js';
import { expectCttaError, ROOT, runCli, useWasm } from './helpers.js';

// A small version of the main job: 4 corruptions at severity 5, 96 images each, batch 32.
let scenarioFile: string;
const tmp = () => mkdtempSync(join(tmpdir(), 'ctta-run-'));

beforeAll(async () => {
  await useWasm();
  scenarioFile = join(tmp(), 'small-continual.json');
  writeFileSync(
    scenarioFile,
    JSON.stringify({
      dataset: 'fashion-mnist',
      model: join(ROOT, 'models/fmnist-resnet8'),
      corruptions: ['gaussian_noise', 'defocus_blur', 'fog', 'contrast'],
      severities: [5],
      ordering: { name: 'continual', params: { samplesPerDomain: 96 } },
      batchSize: 32,
      seeds: [0, 1],
      methods: ['source', 'bn'],
    }),
  );
});

/** Error cells only: throughput and memory legitimately differ between two executions. */
function errorColumns(dir: string) {
  const resourceColumns = new Set(['img/s', 'peak MiB', 'state MiB']);
  return readResults(dir).then((runs) =>
    summarize(runs).map((r) => JSON.stringify({ method: r.method, cells: r.cells.filter((c) => !resourceColumns.has(c.column)) })),
  );
}

describe('method variants (label=method)', () => {
  it('give each option set its own folder and table row; the default variant equals the plain method', async () => {
    expect(parseMethodEntry('tent')).toEqual({ label: 'tent', method: 'tent' });
    expect(parseMethodEntry('half=bn')).toEqual({ label: 'half', method: 'bn' });
    await expectCttaError(() => parseMethodEntry('a=b=c'), /label=method/);
    const scenario = loadScenario(scenarioFile);
    await expectCttaError(() => planSweep([scenario], ['bn', 'bn'], [0]), /listed twice/);
    const jobs = planSweep([scenario], ['bn', 'half=bn'], [0], { half: { alpha: 0.5 } });
    expect(jobs.map((j) => [j.label, j.method, j.methodOptions])).toEqual([['bn', 'bn', {}], ['half', 'bn', { alpha: 0.5 }]]);
    const out = tmp();
    await runSweep(jobs, { out, workers: 1, backend: 'wasm', plugins: [] });
    expect(existsSync(join(out, 'small-continual/half/seed-0.jsonl'))).toBe(true);
    const runs = await readResults(out);
    expect(runs.map((r) => [r.header.method, r.header.label])).toEqual([['bn', undefined], ['bn', 'half']]);
    const rows = summarize(runs);
    expect(rows.map((r) => r.method)).toEqual(['bn', 'half']);
    const mean = (m: string) => rows.find((r) => r.method === m)!.cells.find((c) => c.column === 'mean')!.stat!.mean;
    expect(mean('half')).not.toBe(mean('bn'));
  });
});

describe('prequential runner', () => {
  it('BN beats Source on corrupted data, runs leave no tensor behind, and seeds are deterministic', async () => {
    const scenario = loadScenario(scenarioFile);
    const before = tf.memory().numTensors;
    const source = await runScenario({ scenario, method: 'source', seed: 0 });
    const bn = await runScenario({ scenario, method: 'bn', seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect(source.summary.leakedTensors).toBe(0);
    expect(Object.keys(source.summary.errorPerDomain)).toEqual(['gaussian_noise-5', 'defocus_blur-5', 'fog-5', 'contrast-5']);
    expect(source.summary.n).toBe(384);
    expect(bn.summary.meanError).toBeLessThan(source.summary.meanError);
    const again = await runScenario({ scenario, method: 'bn', seed: 0 });
    expect(Array.from(again.predictions)).toEqual(Array.from(bn.predictions));
    // Online error is the error over all images.
    const correct = source.batches.reduce((s, b) => s + b.perDomain.reduce((a, [, , c]) => a + c, 0), 0);
    expect(source.summary.onlineError).toBeCloseTo(1 - correct / 384, 12);
  });

  it('gives labels only to methods that use them, after they predicted', async () => {
    const calls: string[] = [];
    const { registerMethod } = await import('../src/methods/index.js');
    registerMethod({
      name: 'spy',
      description: 'records the call order',
      usesLabels: true,
      options: { parse: () => ({}) },
      create: () => ({
        name: 'spy',
        usesLabels: true,
        labelSpace: 'dataset',
        options: {},
        async init() {},
        async predict(x) {
          calls.push('predict');
          return tf.tidy(() => tf.fill([x.shape[0], 10], 0.1) as tf.Tensor2D);
        },
        async evaluate(x) {
          return tf.tidy(() => tf.fill([x.shape[0], 10], 0.1) as tf.Tensor2D);
        },
        async adapt(_x, y) {
          calls.push(y ? `adapt+labels(${y.shape[0]})` : 'adapt');
        },
        stateBytes: () => 0,
        async reset() {},
        dispose() {},
      }),
    });
    await runScenario({ scenario: loadScenario(scenarioFile), method: 'spy', seed: 0 });
    expect(calls.slice(0, 4)).toEqual(['predict', 'adapt+labels(32)', 'predict', 'adapt+labels(32)']);
  });

  it('class-incremental scenarios fill the accuracy matrix from held-out sets after every task', async () => {
    const scenario = parseScenario(
      {
        dataset: 'fashion-mnist',
        model: join(ROOT, 'models/fmnist-resnet8'),
        domains: [{ corruption: 'none' }],
        ordering: { name: 'class_incremental', params: { nTasks: 3, classOrder: [0, 1, 2, 3, 4, 5], samplesPerTask: 60 } },
        heldOut: { fraction: 0.1 },
        batchSize: 20,
      },
      'ci.json',
    );
    const r = await runScenario({ scenario, method: 'source', seed: 0 });
    const A = r.summary.accuracyMatrix!;
    expect(A).toHaveLength(3);
    expect(A.every((row) => row.length === 3)).toBe(true);
    // The frozen source model scores every task the same after each task: no forgetting.
    expect(A[1]).toEqual(A[0]);
    expect(A[2]).toEqual(A[0]);
    expect(r.summary.forgetting).toBe(0);
    expect(r.summary.bwt).toBe(0);
    expect(A[0]!.every((a) => a > 0.5)).toBe(true); // a 91% model on clean images of its classes
    // Held-out images never appear in the stream.
    const stream = await openStream(scenario, 0);
    const streamed = new Set(stream.ordering.order);
    for (const t of stream.ordering.tasks) for (const i of t.evalIndices!) expect(streamed.has(i)).toBe(false);
  });

  it('bad method names and options are clear errors', async () => {
    await expectCttaError(() => createMethod('tnet'), /unknown method "tnet".*source, bn/);
    await expectCttaError(() => createMethod('bn', { alpha: 2 }), /method "bn": option alpha: .*fix: options of bn: alpha, ema/);
    await expectCttaError(() => createMethod('bn', { alfa: 1 }), /method "bn": unknown option alfa/);
  });
});

describe('ctta run', () => {
  it('writes results and a table; shards + merge and --workers 2 give the same errors as one run', () => {
    const [whole, s1, s2, merged, workers] = [tmp(), tmp(), tmp(), tmp(), tmp()];
    const r = runCli(['run', scenarioFile, '--out', whole, '--quiet', '--table', 'full']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/gaussian_noise-5.*defocus_blur-5.*fog-5.*contrast-5.*mean/);
    expect(readdirSync(join(whole, 'small-continual', 'bn')).sort()).toEqual(['seed-0.jsonl', 'seed-1.jsonl']);
    expect(runCli(['run', scenarioFile, '--out', s1, '--shard', '1/2', '--quiet']).code).toBe(0);
    expect(runCli(['run', scenarioFile, '--out', s2, '--shard', '2/2', '--quiet']).code).toBe(0);
    expect(runCli(['merge', s1, s2, '--out', merged]).code).toBe(0);
    expect(runCli(['run', scenarioFile, '--out', workers, '--workers', '2', '--quiet']).code).toBe(0);
    return Promise.all([errorColumns(whole), errorColumns(merged), errorColumns(workers)]).then(([a, b, c]) => {
      expect(b).toEqual(a);
      expect(c).toEqual(a);
    });
  });

  it('resumes after kill -9: nothing finished is redone, and the errors equal an uninterrupted run', async () => {
    const out = tmp();
    const child = spawn(process.execPath, ['dist/cli/main.js', 'run', scenarioFile, '--out', out, '--quiet'], { cwd: ROOT, stdio: 'ignore' });
    // Kill as soon as the first run is finished (the second is then in progress).
    const first = join(out, 'small-continual', 'source', 'seed-0.jsonl');
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (existsSync(first)) {
          clearInterval(t);
          child.kill('SIGKILL');
          resolve();
        }
      }, 50);
      child.on('exit', () => {
        clearInterval(t);
        existsSync(first) ? resolve() : reject(new Error('run ended before it could be killed'));
      });
    });
    await new Promise((r) => child.on('exit', r));
    const finishedBefore = readdirSync(join(out, 'small-continual', 'source'));
    expect(finishedBefore).toContain('seed-0.jsonl');
    const r = runCli(['run', scenarioFile, '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/skip small-continual source seed 0/);
    const reference = tmp();
    expect(runCli(['run', scenarioFile, '--out', reference, '--quiet']).code).toBe(0);
    expect(await errorColumns(out)).toEqual(await errorColumns(reference));
  });

  it('runs a plug-in method from a user file', () => {
    const out = tmp();
    const r = runCli(['run', scenarioFile, '--plugin', 'examples/label-prior.js', '--methods', 'label-prior', '--seeds', '0', '--out', out, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/label-prior/);
  });

  it('unknown method, bad option, missing results dir: one line and exit 2', () => {
    const cases: [string[], RegExp][] = [
      [['run', scenarioFile, '--methods', 'tnet'], /unknown method "tnet"/],
      [['run', scenarioFile, '--methods', 'bn', '--set', 'bn.alpha=7'], /method "bn": option alpha/],
      [['run', scenarioFile, '--plugin', 'examples/nope.js'], /plug-in examples\/nope\.js could not be loaded/],
      [['table', '/nonexistent/results'], /\/nonexistent\/results/],
    ];
    for (const [args, pattern] of cases) {
      const r = runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toMatch(/    at /);
    }
  });
});
