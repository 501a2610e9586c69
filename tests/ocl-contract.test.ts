/**
 * The online continual-learning methods against the method contract (../contract/check-method.ts),
 * with the option sets that take their other code paths.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import '../src/methods/index.js';
import { useWasm } from './helpers.js';
import { checkMethod } from './contract/check-method.js';

beforeAll(useWasm);

const CASES: [string, Record<string, unknown>][] = [
  ['er', { memorySize: 40 }],
  ['er', { memorySize: 40, combine: 'concat', policy: 'batched' }],
  ['er', { memorySize: 40, policy: 'class-balanced', optimizer: 'adam', lr: 1e-3, weightDecay: 1e-4 }],
];

describe('online continual-learning methods keep the method contract', () => {
  it.each(CASES)('%s %o', async (name, options) => {
    expect(await checkMethod(name, options)).toEqual([]);
  });
});
