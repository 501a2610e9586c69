/**
 * Every registered method, and every example plug-in (examples/*.js, *.ts), against the method
 * contract (./check-method.ts): no failures expected.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import '../../src/methods/index.js';
import { listMethods } from '../../src/methods/registry.js';
import { loadPlugin } from '../../src/methods/plugin.js';
import { ROOT, useWasm } from '../helpers.js';
import { checkMethod } from './check-method.js';

// The plug-ins import from 'ctta', i.e. the built dist/ (`npm test` builds it first).
const examples = readdirSync(join(ROOT, 'examples')).filter((f) => /\.(js|ts)$/.test(f));
const plugins: string[] = [];
for (const file of examples) plugins.push(...(await loadPlugin(join(ROOT, 'examples', file))));

/** Options that keep the checks cheap; the contract does not depend on them. */
const OPTIONS: Record<string, Record<string, unknown>> = {
  // 2 augmented teacher views instead of 32 (the target averages them when the anchor is unsure).
  cotta: { views: 2 },
  // 2 augmented views for the uncertainty instead of 10 (the minimum: a variance needs two).
  vida: { views: 2 },
  // Fisher information from 64 clean images (in batches of 32) instead of 2000.
  eata: { fisherSize: 64, fisherBatchSize: 32 },
  // A smaller random buffer layer (R is 8 d^2 bytes): the contract does not depend on its width.
  acil: { bufferSize: 512 },
  'aef-ocl': { bufferSize: 512 },
  'ds-al': { bufferSize: 512 },
  // The reduced instance loss (1 view instead of 16 rotations: 7x less work) and a small memory.
  onpro: { rotations: 1, memorySize: 40 },
  // A small memory (the contract does not depend on its size).
  uer: { memorySize: 40 },
  // A 1,024-dimensional HDC space and 128 calibration images instead of 10,000 and 1,000.
  ear: { hyperDim: 1024, calibrationSize: 128 },
  // A small selector memory and selector MLP.
  tame: { memorySize: 40, selectorHidden: 32 },
};

const names = listMethods().map((d) => d.name);

/**
 * Option sets that take code paths the defaults do not (each checked as well): BN's EMA target
 * statistics (a source snapshot and its restore), the episodic resets of TENT and SAR, and the
 * online continual-learning methods' alternatives.
 */
const VARIANTS: [string, Record<string, unknown>][] = [
  ['bn', { ema: 0.1 }],
  ['tent', { episodic: true }],
  ['nhl', { normStatistics: 'running' }],
  ['sar', { episodic: true }],
  // ER's other readings: Mammoth's concatenated batch with Mai's batched memory; a class-balanced
  // memory with Adam and weight decay. AEF-OCL balancing before every prediction.
  ['er', { memorySize: 40, combine: 'concat', policy: 'batched' }],
  ['er', { memorySize: 40, policy: 'class-balanced', optimizer: 'adam', lr: 1e-3, weightDecay: 1e-4 }],
  ['aef-ocl', { balance: 'per-batch' }],
  // UER without the head bias, with Mai et al.'s batched memory.
  ['uer', { memorySize: 40, bias: 'drop', policy: 'batched' }],
  // EAR routing whole batches instead of single images.
  ['ear', { hyperDim: 1024, calibrationSize: 128, routing: 'batch' }],
  // TAME switching experts: the contract's stream alternates clean and noisy batches, and with a
  // 4-loss window and 0.1 std the detector holds noisy batches from batch 2 and spawns at batch 3
  // (inside the first half the leak check compares with). Head mode: frozen backbone with the
  // selector on its features; a trained backbone with MLP heads and Adam.
  ['tame', { memorySize: 40, selectorHidden: 32, maxExperts: 2, minHistory: 2, window: 4, sigmas: 0.1, minStd: 0 }],
  ['tame', { memorySize: 40, selectorHidden: 32, mode: 'head', selectorInput: 'features' }],
  ['tame', { memorySize: 40, selectorHidden: 32, mode: 'head', backbone: 'train', headHidden: 16, optimizer: 'adam', lr: 1e-3, weightDecay: 1e-4 }],
];

beforeAll(useWasm);

describe('the method contract', () => {
  it('covers the built-in methods and the example plug-ins', () => {
    expect(names).toEqual(expect.arrayContaining(['source', 'bn', 'tent', 'lame', 'cotta', 'vida', 'eata', 'sar', 'er', 'onpro', 'acil', 'aef-ocl', 'ds-al', 'rotta', 'nhl', 'uer', 'ear', 'tame', ...plugins]));
    expect(plugins.length).toBeGreaterThan(0);
  });

  it.each(names)('%s keeps it', async (name) => {
    expect(await checkMethod(name, OPTIONS[name])).toEqual([]);
  });

  it.each(VARIANTS)('%s with %o keeps it', async (name, options) => {
    expect(await checkMethod(name, { ...OPTIONS[name], ...options })).toEqual([]);
  });
});
