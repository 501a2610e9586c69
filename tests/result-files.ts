// Synthetic result files (the runner's JSONL format) for tests of tables, reports and plots:
// a header, batch records and a summary with chosen values, written where `ctta run --out` would.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BatchRecord, RunHeader, RunSummary } from '../src/eval/records.js';

const MIB = 1024 * 1024;

export function header(scenario: string, method: string, seed: number, label: string | undefined, domains: string[], tasks: string[]): RunHeader {
  return {
    type: 'header', format: 'ctta-results/1', scenario, scenarioHash: `hash-${scenario}`, method, ...(label ? { label } : {}),
    methodOptions: label ? { variant: label } : {}, seed, domains, tasks, backend: 'wasm', versions: { tfjs: '4.22.0' }, ctta: '0.1.0',
    node: 'v20', startedAt: '2025-01-01T00:00:00.000Z',
  };
}

export function batch(i: number, task: number): BatchRecord {
  return { type: 'batch', i, start: i * 10, end: i * 10 + 10, task, perDomain: [[0, 10, 8]], predictMs: 1, adaptMs: 2, tensorBytes: 100, rss: 1000 };
}

export function write(dir: string, h: RunHeader, batches: BatchRecord[], s: RunSummary): void {
  const folder = join(dir, h.scenario, h.label ?? h.method);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, `seed-${h.seed}.jsonl`), [h, ...batches, s].map((r) => JSON.stringify(r)).join('\n') + '\n');
}

export function summary(extra: Partial<RunSummary>): RunSummary {
  return {
    type: 'summary', n: 20, errorPerDomain: { clean: 0.2 }, meanError: 0.2, onlineError: 0.2, ece: 0.05,
    peakTensorBytes: MIB, methodStateBytes: 0, imagesPerSecond: 100, seconds: 1, leakedTensors: 0, ...extra,
  };
}
