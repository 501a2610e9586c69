/**
 * Result integrity: a number is never stale (a finished run is reused only if it is the same
 * run), never mixed (one table row = one identity), never computed on data that does not fit
 * the model, never accepted from a method that returned something other than probabilities; and
 * two sweeps on one folder never corrupt it.
 */
import * as tf from '@tensorflow/tfjs';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { beforeAll, describe, expect, it } from 'vitest';
import { openRun } from '../src/eval/run-setup.js';
import { runScenario } from '../src/eval/runner.js';
import { planSweep, runSweep } from '../src/eval/sweep.js';
import { FrozenMethod } from '../src/methods/base/frozen-method.js';
import { loadPlugin, registerMethod } from '../src/methods/index.js';
import { mergeResults } from '../src/report/merge.js';
import { readResults } from '../src/report/results.js';
import { summarize } from '../src/report/table.js';
import { loadScenario, parseScenario, resolveModelPath } from '../src/streams/scenario.js';
import { expectCttaError, MODEL, ROOT, runCli, useWasm } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ctta-integrity-'));

/** Two corruptions x 32 images, batch 32: two batches per run. */
const SMALL = {
  dataset: 'fashion-mnist',
  model: MODEL,
  corruptions: ['gaussian_noise', 'fog'],
  severities: [5],
  ordering: { name: 'continual', params: { samplesPerDomain: 32 } },
  batchSize: 32,
  seeds: [0],
  methods: ['source'],
};

function writeScenario(dir: string, name: string, fields: Record<string, unknown> = {}): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ...SMALL, ...fields }));
  return file;
}

const sweep = (file: string, methods: string[], seeds: number[], options: Record<string, Record<string, unknown>>, out: string) =>
  runSweep(planSweep([loadScenario(file)], methods, seeds, options), { out, workers: 1, backend: 'wasm', plugins: [] });

beforeAll(async () => {
  await useWasm();
});

describe('run identity', () => {
  it('a finished run is reused only when scenario, effective options, model and seed match; tables show exactly those runs', async () => {
    const dir = tmp();
    const out = join(dir, 'runs');
    const file = writeScenario(dir, 'tiny');
    expect((await sweep(file, ['bn'], [0], {}, out)).ran).toBe(1);
    expect((await sweep(file, ['bn'], [0], {}, out)).skipped).toBe(1);
    // Same default written explicitly: the effective options are the same run.
    expect((await sweep(file, ['bn'], [0], { bn: { alpha: 1 } }, out)).skipped).toBe(1);
    // A changed option: refused, naming the option, before any work.
    await expectCttaError(() => sweep(file, ['bn'], [0], { bn: { alpha: 0.5 } }, out), /tiny\/bn\/seed-0\.jsonl is a finished run with other settings: option alpha: 1 vs 0\.5/);
    // More seeds with another option: refused too (one row would mix both settings).
    await expectCttaError(() => sweep(file, ['bn'], [0, 1], { bn: { alpha: 0.5 } }, out), /option alpha/);
    expect(existsSync(join(out, 'tiny/bn/seed-1.jsonl'))).toBe(false);
    // An edited scenario: refused.
    writeScenario(dir, 'tiny', { ordering: { name: 'continual', params: { samplesPerDomain: 64 } } });
    await expectCttaError(() => sweep(file, ['bn'], [0], {}, out), /scenario tiny has changed/);
    writeScenario(dir, 'tiny');
    // More seeds, same settings: only the new seed runs.
    const more = await sweep(file, ['bn'], [0, 1], {}, out);
    expect([more.ran, more.skipped]).toEqual([1, 1]);
    const rows = summarize(await readResults(out));
    expect(rows.map((r) => [r.method, r.seeds.length])).toEqual([['bn', 2]]);
    // The header records the identity.
    const header = (await readResults(out))[0]!.header;
    expect(header.modelHash).toMatch(/^[0-9a-f]{64}$/);
    expect(header.methodOptions).toEqual({ alpha: 1 });
  });

  it('tables and merges refuse to put runs of different identity in one row', async () => {
    const dir = tmp();
    const file = writeScenario(dir, 'tiny');
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    await sweep(file, ['bn'], [0], {}, a);
    await sweep(file, ['bn'], [1], { bn: { alpha: 0.5 } }, b);
    await expectCttaError(() => mergeResults([a, b], join(dir, 'merged')), /different runs: option alpha: 1 vs 0\.5/);
    expect(existsSync(join(dir, 'merged', 'tiny'))).toBe(false);
    // The same mix made by hand (a file copied in): the table refuses it.
    mkdirSync(join(a, 'tiny/bn'), { recursive: true });
    copyFileSync(join(b, 'tiny/bn/seed-1.jsonl'), join(a, 'tiny/bn/seed-1.jsonl'));
    await expectCttaError(() => readResults(a), /would be one table row \(tiny \/ bn\) but are different runs: option alpha/);
  });

  it('a scenario keeps its hash when ctta adds a field with a default (the committed results still match)', async () => {
    const header = JSON.parse(readFileSync(join(ROOT, 'results/fmnist-c-continual/source/seed-0.jsonl'), 'utf8').split('\n')[0]!);
    expect(loadScenario('fmnist-c-continual').hash).toBe(header.scenarioHash);
  });

  it('a run that used a companion checkpoint (ViDA warm-up) is not reused after the companion changed', async () => {
    const dir = tmp();
    cpSync(MODEL, join(dir, 'm'), { recursive: true });
    cpSync(`${MODEL}-vida`, join(dir, 'm-vida'), { recursive: true });
    const file = writeScenario(dir, 'tiny', { model: join(dir, 'm'), corruptions: ['fog'] });
    const out = join(dir, 'runs');
    await sweep(file, ['vida'], [0], {}, out);
    const header = (await readResults(out))[0]!.header;
    expect(Object.keys(header.companions!)).toEqual(['vida']);
    expect((await sweep(file, ['vida'], [0], {}, out)).skipped).toBe(1);
    // Re-warm (here: change one adapter weight, keeping the checkpoint valid).
    const bin = readFileSync(join(dir, 'm-vida/adapters.bin'));
    bin[0] = bin[0]! ^ 1;
    writeFileSync(join(dir, 'm-vida/adapters.bin'), bin);
    const manifest = JSON.parse(readFileSync(join(dir, 'm-vida/manifest.json'), 'utf8'));
    manifest.adapters.sha256 = createHash('sha256').update(bin).digest('hex');
    writeFileSync(join(dir, 'm-vida/manifest.json'), JSON.stringify(manifest));
    await expectCttaError(() => sweep(file, ['vida'], [0], {}, out), /its vida companion checkpoint has changed/);
  });

  it('--seeds 0,0 runs seed 0 once', async () => {
    const scenario = parseScenario({ ...SMALL }, join(tmp(), 'tiny.json'));
    expect(planSweep([scenario], ['source'], [0, 0, 1]).map((j) => j.seed)).toEqual([0, 1]);
    expect(planSweep([scenario, scenario], ['source'], [0]).length).toBe(1);
  });
});

/** A test-only method whose predict returns whatever `make` builds from the source probabilities. */
class Misbehaving extends FrozenMethod {
  constructor(
    name: string,
    private readonly make: (p: tf.Tensor2D, batch: number) => tf.Tensor2D,
  ) {
    super(name, {});
  }

  private batch = 0;

  protected override async output(x: tf.Tensor4D): Promise<tf.Tensor2D> {
    const p = tf.tidy(() => tf.softmax(this.network.logits(x)) as tf.Tensor2D);
    const out = tf.tidy(() => this.make(p, this.batch));
    p.dispose();
    this.batch++;
    return out;
  }
}

function registerMisbehaving(name: string, make: (p: tf.Tensor2D, batch: number) => tf.Tensor2D): void {
  registerMethod({ name, description: 'test', options: z.object({}), create: () => new Misbehaving(name, make) });
}

describe('method outputs', () => {
  beforeAll(() => {
    registerMisbehaving('wide-output', (p) => tf.concat([p, p], 1) as tf.Tensor2D);
    registerMisbehaving('logit-output', (p) => tf.log(p) as tf.Tensor2D);
    registerMisbehaving('unnormalised', (p) => tf.mul(p, 3) as tf.Tensor2D);
    registerMisbehaving('throws-later', (p, batch) => {
      if (batch === 1) throw new Error('boom\n    at someFrame (file.js:1:1)');
      return tf.clone(p);
    });
  });

  it('a wrong shape, logits or unnormalised scores stop the run with the method, the batch and what was found', async () => {
    const scenario = parseScenario({ ...SMALL }, join(tmp(), 'tiny.json'));
    const out = tmp();
    await expectCttaError(() => runScenario({ scenario, method: 'wide-output', seed: 0, out }), /method "wide-output" returned a tensor of shape \[32, 20\], expected \[32, 10\].*at batch 0/);
    await expectCttaError(() => runScenario({ scenario, method: 'logit-output', seed: 0, out }), /method "logit-output" returned a negative probability .* at batch 0/);
    await expectCttaError(() => runScenario({ scenario, method: 'unnormalised', seed: 0, out }), /method "unnormalised" returned row 0 summing to 3\.0+, not 1/);
    await expectCttaError(() => runScenario({ scenario, method: 'throws-later', seed: 0, out }), /^method "throws-later" failed in predict\(\) at batch 1: boom \(fix/);
    // Nothing of those runs was written.
    expect(readdirSync(out)).toEqual(existsSync(join(out, 'tiny')) ? ['tiny'] : []);
    if (existsSync(join(out, 'tiny'))) for (const m of readdirSync(join(out, 'tiny'))) expect(readdirSync(join(out, 'tiny', m))).toEqual([]);
  });

  it('a failing run is reported and the rest of the sweep still runs', async () => {
    const dir = tmp();
    const file = writeScenario(dir, 'tiny');
    const events: string[] = [];
    const report = await runSweep(planSweep([loadScenario(file)], ['throws-later', 'source'], [0]), {
      out: join(dir, 'runs'),
      workers: 1,
      backend: 'wasm',
      plugins: [],
      onEvent: (e) => {
        if (e.type === 'failed' || e.type === 'done') events.push(`${e.type} ${e.job.label}`);
      },
    });
    expect(events).toEqual(['failed throws-later', 'done source']);
    expect(report.failed[0]!.error.message).toMatch(/^tiny\/throws-later\/seed-0: method "throws-later" failed in predict\(\) at batch 1: boom$/);
    expect(report.failed[0]!.error.exitCode).toBe(1);
    expect((await readResults(join(dir, 'runs'))).map((r) => r.header.method)).toEqual(['source']);
  });

  it('plug-ins cannot replace a built-in method, and loading one twice reports its methods again', async () => {
    expect(() => registerMethod({ name: 'tent', description: 'fake', options: z.object({}), create: () => new FrozenMethod('tent', {}) })).toThrow(/"tent" is built into ctta/);
    const dir = tmp();
    const plugin = join(dir, 'p.mjs');
    writeFileSync(plugin, `import { registerMethod } from ${JSON.stringify(join(ROOT, 'src/methods/index.ts'))};\nimport { FrozenMethod } from ${JSON.stringify(join(ROOT, 'src/methods/base/frozen-method.ts'))};\nimport { z } from 'zod';\nregisterMethod({ name: 'twice-loaded', description: 'x', options: z.object({}), create: () => new FrozenMethod('twice-loaded', {}) });\n`);
    expect(await loadPlugin(plugin)).toEqual(['twice-loaded']);
    expect(await loadPlugin(plugin)).toEqual(['twice-loaded']);
  });
});

describe('data that does not fit the model', () => {
  it('a class-subset model needs "modelClasses": "subset", and then the run records a warning', async () => {
    const base5 = join(ROOT, 'models/fmnist-resnet8-base5');
    const plain = parseScenario({ ...SMALL, model: base5 }, join(tmp(), 'subset.json'));
    await expectCttaError(() => openRun({ scenario: plain, method: 'source', seed: 0 }), /predicts only 5 of the 10 classes of fashion-mnist.*"modelClasses": "subset"/);
    const declared = parseScenario({ ...SMALL, model: base5, modelClasses: 'subset' }, join(tmp(), 'subset.json'));
    const warnings: string[] = [];
    const r = await runScenario({ scenario: declared, method: 'source', seed: 0, onWarning: (w) => warnings.push(w) });
    expect(r.header.warnings).toEqual([expect.stringMatching(/predicts 5 of the 10 classes.*always count as errors for source/)]);
    expect(warnings).toEqual(r.header.warnings);
  });

  it('class names that disagree with the dataset, and a manifest-less head of the wrong size, are errors', async () => {
    const dir = tmp();
    const renamed = join(dir, 'renamed');
    cpSync(MODEL, renamed, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(renamed, 'manifest.json'), 'utf8'));
    manifest.classNames[3] = 'Cat';
    writeFileSync(join(renamed, 'manifest.json'), JSON.stringify(manifest));
    await expectCttaError(() => openRun({ scenario: parseScenario({ ...SMALL, model: renamed }, join(dir, 's.json')), method: 'source', seed: 0 }), /output 3 is class "Cat" in its manifest, but class 3 of fashion-mnist is "Dress"/);
    const bare = join(dir, 'bare');
    mkdirSync(bare);
    for (const f of ['model.json', 'weights.bin']) copyFileSync(join(ROOT, 'models/fmnist-resnet8-base5', f), join(bare, f));
    await expectCttaError(() => openRun({ scenario: parseScenario({ ...SMALL, model: bare, modelClasses: 'subset' }, join(dir, 's.json')), method: 'source', seed: 0 }), /has 5 outputs but fashion-mnist has 10 classes, and no manifest\.json/);
  });

  it('a batch size far beyond memory is refused before anything is allocated', async () => {
    const scenario = parseScenario({ ...SMALL, batchSize: 5_000_000 }, join(tmp(), 'huge.json'));
    const before = tf.memory().numBytes;
    await expectCttaError(() => openRun({ scenario, method: 'source', seed: 0 }), /batchSize 5000000 needs at least [\d.]+ GiB .* lower "batchSize"/);
    expect(tf.memory().numBytes).toBe(before);
  });
});

describe('paths stay inside their folders', () => {
  it('scenario names and relative model paths cannot leave their folders; JSON errors do not quote the file', async () => {
    const dir = tmp();
    await expectCttaError(() => parseScenario({ ...SMALL, name: '../../escaped' }, join(dir, 's.json')), /name/);
    await expectCttaError(() => resolveModelPath('../../../etc', join(dir, 's.json')), /model "\.\.\/\.\.\/\.\.\/etc" leaves the folder/);
    await expectCttaError(() => resolveModelPath('models/../../x', join(dir, 's.json')), /leaves the folder/);
    expect(resolveModelPath('models/fmnist-resnet8', join(dir, 's.json'))).toBe(join(ROOT, 'models/fmnist-resnet8'));
    // A shipped model by its bare name, as loadModel takes it.
    expect(resolveModelPath('fmnist-resnet8', join(dir, 's.json'))).toBe(join(ROOT, 'models/fmnist-resnet8'));
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"dataset": "fashion-mnist",\n SECRET-CONTENT }');
    await expectCttaError(() => loadScenario(broken), /broken\.json: not valid JSON at line 2/);
    let message = '';
    try {
      loadScenario(broken);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toContain('SECRET');
  });
});

/** `ctta run` as a child process; resolves with its exit code and output. */
function spawnRun(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['dist/cli/main.js', 'run', ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr });
    });
  });
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('the CLI', () => {
  it('two concurrent sweeps on one --out share the work and leave valid files and a correct table', async () => {
    const dir = tmp();
    const file = writeScenario(dir, 'tiny');
    const out = join(dir, 'runs');
    const args = [file, '--methods', 'source,bn', '--seeds', '0,1', '--out', out, '--quiet'];
    const [a, b] = await Promise.all([spawnRun(args), spawnRun(args)]);
    expect([a.code, b.code, a.stderr + b.stderr]).toEqual([0, 0, '']);
    const runs = await readResults(out);
    expect(runs.map((r) => `${r.header.method} ${r.header.seed}`)).toEqual(['bn 0', 'bn 1', 'source 0', 'source 1']);
    for (const m of ['source', 'bn']) expect(readdirSync(join(out, 'tiny', m)).sort()).toEqual(['seed-0.jsonl', 'seed-1.jsonl']);
    expect(summarize(runs).map((r) => [r.method, r.seeds.length])).toEqual([['source', 2], ['bn', 2]]);
    // Staggered, with another option: the second is refused in one line and changes nothing.
    const bytes = readFileSync(join(out, 'tiny/bn/seed-0.jsonl'));
    const c = await spawnRun([file, '--methods', 'bn', '--seeds', '0', '--set', 'bn.alpha=0.5', '--out', out, '--quiet']);
    expect(c.code).toBe(2);
    expect(lines(c.stderr)).toEqual([expect.stringMatching(/^ctta: .*tiny\/bn\/seed-0\.jsonl is a finished run with other settings: option alpha: 1 vs 0\.5 \(fix: /)]);
    expect(readFileSync(join(out, 'tiny/bn/seed-0.jsonl'))).toEqual(bytes);
  });

  it('a sweep with other settings than a running one is refused in one line, and the running one finishes', async () => {
    const dir = tmp();
    const file = writeScenario(dir, 'longer', { ordering: { name: 'continual', params: { samplesPerDomain: 1024 } } });
    const out = join(dir, 'runs');
    const first = spawnRun([file, '--methods', 'bn', '--seeds', '0', '--out', out, '--quiet']);
    const lock = join(out, 'longer/bn/seed-0.jsonl.lock');
    for (let k = 0; k < 600 && !existsSync(lock); k++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(lock)).toBe(true);
    const second = await spawnRun([file, '--methods', 'bn', '--seeds', '0', '--set', 'bn.alpha=0.5', '--out', out, '--quiet']);
    expect(second.code).toBe(2);
    expect(lines(second.stderr)).toEqual([expect.stringMatching(/longer\/bn\/seed-0\.jsonl is being computed by process \d+ on .* with other settings \(fix: /)]);
    expect((await first).code).toBe(0);
    const runs = await readResults(out);
    expect(runs.map((r) => r.header.methodOptions)).toEqual([{ alpha: 1 }]);
    expect(existsSync(lock)).toBe(false);
  });

  it('an empty shard exits 0 with a message; a failed run exits 1 with one line per failure after the table', async () => {
    const dir = tmp();
    const file = writeScenario(dir, 'tiny');
    const empty = runCli(['run', file, '--methods', 'source', '--seeds', '0', '--shard', '2/3', '--out', join(dir, 'shard')]);
    expect([empty.code, lines(empty.stderr)]).toEqual([0, ['nothing to do in this shard: shard 2/3 of a 1-run grid is empty']]);
    const plugin = join(dir, 'bad.mjs');
    // Imports only ctta (a plug-in outside the repo cannot resolve other packages yet): logits as "probabilities".
    writeFileSync(plugin, `import { registerMethod, FrozenMethod } from ${JSON.stringify(join(ROOT, 'dist/index.js'))};\nclass Bad extends FrozenMethod { async output(x) { return this.network.logits(x); } }\nregisterMethod({ name: 'bad-logits', description: 'x', options: { parse: (o) => o }, create: () => new Bad('bad-logits', {}) });\n`);
    const r = runCli(['run', file, '--plugin', plugin, '--methods', 'bad-logits,source', '--seeds', '0', '--out', join(dir, 'runs'), '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(lines(r.stderr)).toEqual([
      expect.stringMatching(/^failed tiny bad-logits seed 0: tiny\/bad-logits\/seed-0: method "bad-logits" returned a negative probability .* at batch 0/),
      expect.stringMatching(/^ctta: 1 of 2 run\(s\) failed/),
    ]);
    expect(r.stdout).toMatch(/\| source /);
    // The same in worker threads: the failure is reported, the other run finishes.
    const w = runCli(['run', file, '--plugin', plugin, '--methods', 'bad-logits,bn', '--seeds', '0', '--workers', '2', '--out', join(dir, 'runs'), '--quiet']);
    expect(w.code).toBe(1);
    expect(lines(w.stderr)).toEqual([expect.stringMatching(/^failed tiny bad-logits seed 0: .*negative probability/), expect.stringMatching(/^ctta: 1 of 2 run\(s\) failed/)]);
    expect((await readResults(join(dir, 'runs'))).map((x) => x.header.method)).toEqual(['bn', 'source']);
  });
});
