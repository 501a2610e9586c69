// The result format: what the writer writes, the reader reads back, and both refuse bad records.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resultRecordSchema, type BatchRecord, type RunHeader, type RunSummary } from '../src/eval/records.js';
import { ResultWriter, isFinished, runFile } from '../src/eval/result-writer.js';
import { readRunFile } from '../src/report/results.js';
import { expectCttaError } from './helpers.js';

const header: RunHeader = {
  type: 'header', format: 'ctta-results/1', scenario: 'toy', scenarioHash: 'abc', method: 'eata', label: 'eata-fast',
  methodOptions: { lr: 0.001, episodic: false }, seed: 3, domains: ['gauss', 'fog'], tasks: ['all'], backend: 'wasm',
  versions: { tfjs: '4.22.0' }, ctta: '0.1.0', node: 'v20.0.0', startedAt: '2025-01-01T00:00:00.000Z',
};

function batch(i: number, diagnostics?: Record<string, number>): BatchRecord {
  return {
    type: 'batch', i, start: i * 10, end: i * 10 + 10, task: 0, perDomain: [[i < 2 ? 0 : 1, 10, 7 + (i % 3)]],
    predictMs: 1.5, adaptMs: 2.25, tensorBytes: 1000, rss: 5000, ...(diagnostics ? { diagnostics } : {}),
  };
}

const summary: RunSummary = {
  type: 'summary', n: 40, errorPerDomain: { gauss: 0.2, fog: 0.25 }, meanError: 0.225, onlineError: 0.225, ece: 0.04,
  accuracyMatrix: [[0.8]], finalAverageAccuracy: 0.8, averageIncrementalAccuracy: 0.8, forgetting: 0, bwt: 0,
  peakTensorBytes: 2048, methodStateBytes: 512, imagesPerSecond: 123.5, seconds: 0.3, leakedTensors: 0,
};

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ctta-records-'));
});

function write(dir: string, batches: BatchRecord[], h: RunHeader = header, s: RunSummary = summary): string {
  const writer = new ResultWriter(runFile(dir, h.scenario, h.label ?? h.method, h.seed), h);
  for (const b of batches) writer.batch(b);
  writer.finish(s);
  return writer.file;
}

describe('result records', () => {
  it('round trip: what the writer writes the reader reads back equal (diagnostics included)', async () => {
    const batches = [batch(0, { selected: 7, reliable: 0.5 }), batch(1, { selected: 3, reliable: 1 }), batch(2), batch(3, { selected: 0, reliable: 0 })];
    const file = write(join(root, 'trip'), batches);
    expect(file).toBe(join(root, 'trip', 'toy', 'eata-fast', 'seed-3.jsonl'));
    expect(isFinished(file)).toBe(true);
    const run = await readRunFile(file);
    expect(run).toEqual({ file, header, batches, summary });
    expect(run.batches[1]!.diagnostics).toEqual({ selected: 3, reliable: 1 });
    expect(run.batches[2]!.diagnostics).toBeUndefined();
    // Every line is one record of the union, told apart by its type.
    const types = readFileSync(file, 'utf8').trim().split('\n').map((l) => resultRecordSchema.parse(JSON.parse(l)).type);
    expect(types).toEqual(['header', 'batch', 'batch', 'batch', 'batch', 'summary']);
  });

  it('an older file (no diagnostics, no label) still reads; fields a newer writer adds pass through', async () => {
    const dir = join(root, 'old', 'toy', 'tent');
    const file = join(dir, 'seed-0.jsonl');
    // Written by ctta 0.1.0 before diagnostics existed (shortened from a real run).
    const text = [
      '{"type":"header","format":"ctta-results/1","scenario":"toy","scenarioHash":"981c","method":"tent","methodOptions":{"momentum":0.9,"episodic":false},"seed":0,"domains":["gaussian_noise-5"],"tasks":["all"],"backend":"wasm","versions":{"tfjs":"4.22.0"},"ctta":"0.1.0","node":"v20.20.2","startedAt":"2026-11-24T14:44:19.886Z","gpu":"none"}',
      '{"type":"batch","i":0,"start":0,"end":64,"task":0,"perDomain":[[0,64,50]],"predictMs":1784.758,"adaptMs":19.008,"tensorBytes":632792,"rss":846852096}',
      '{"type":"summary","n":64,"errorPerDomain":{"gaussian_noise-5":0.21875},"meanError":0.21875,"onlineError":0.21875,"ece":0.18,"peakTensorBytes":838744,"methodStateBytes":319080,"imagesPerSecond":281.46,"seconds":0.2,"leakedTensors":0}',
    ].join('\n');
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, text + '\n');
    const run = await readRunFile(file);
    expect(run.header.method).toBe('tent');
    expect(run.header.label).toBeUndefined();
    expect((run.header as Record<string, unknown>).gpu).toBe('none');
    expect(run.batches).toHaveLength(1);
    expect(run.batches[0]!.diagnostics).toBeUndefined();
    expect(run.summary.errorPerDomain['gaussian_noise-5']).toBe(0.21875);
  });

  it('the reader names file and line of a corrupt batch record', async () => {
    const file = write(join(root, 'corrupt'), [batch(0, { selected: 1 }), batch(1, { selected: 2 }), batch(2, { selected: 3 })]);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const save = (k: number, line: string) => {
      const copy = [...lines];
      copy[k] = line;
      writeFileSync(file, copy.join('\n') + '\n');
    };
    const parsed = (k: number) => JSON.parse(lines[k]!) as Record<string, unknown>;
    save(2, JSON.stringify({ ...parsed(2), perDomain: [[0, 'ten', 7]] }));
    await expectCttaError(() => readRunFile(file), /seed-3\.jsonl: line 3: field "perDomain\.0\.1": .*expected number.*fix: delete it and re-run/);
    // A NaN diagnostic becomes null in JSON.
    save(3, JSON.stringify({ ...parsed(3), diagnostics: { selected: null } }));
    await expectCttaError(() => readRunFile(file), /seed-3\.jsonl: line 4: field "diagnostics\.selected": .*expected number, received null/);
    save(1, JSON.stringify({ ...parsed(1), diagnostics: { 'two words': 1 } }));
    await expectCttaError(() => readRunFile(file), /seed-3\.jsonl: line 2: field "diagnostics\.two words": a diagnostic name must be an identifier/);
    save(2, lines[2]!.slice(0, 40));
    await expectCttaError(() => readRunFile(file), /seed-3\.jsonl: line 3: not valid JSON/);
    save(0, JSON.stringify({ ...parsed(0), format: 'ctta-results/2' }));
    await expectCttaError(() => readRunFile(file), /seed-3\.jsonl: line 1: format "ctta-results\/2" is not ctta-results\/1/);
  });

  it('the writer refuses a bad record before writing it', async () => {
    const dir = join(root, 'refused');
    const file = runFile(dir, 'toy', 'eata-fast', 3);
    await expectCttaError(() => new ResultWriter(file, { ...header, seed: -1 }), /the header record does not match the result format: field "seed"/);
    expect(existsSync(`${file}.partial`)).toBe(false);

    const writer = new ResultWriter(file, header);
    writer.batch(batch(0, { selected: 1 }));
    await expectCttaError(() => writer.batch(batch(1, { selected: Number.NaN })), /batch 1 record does not match the result format: field "diagnostics\.selected"/);
    // Only the header and the good batch reached the file.
    expect(readFileSync(`${file}.partial`, 'utf8').trim().split('\n')).toHaveLength(2);
    await expectCttaError(() => writer.finish({ ...summary, meanError: Number.NaN }), /summary record does not match the result format: field "meanError"/);
    expect(existsSync(file)).toBe(false);
    writer.abort();
    expect(existsSync(`${file}.partial`)).toBe(false);
  });
});
