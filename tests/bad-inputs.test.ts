/**
 * No stack trace reaches a user for an input error: every bad input below, through the real CLI,
 * exits 2 with exactly one line on stderr that names what is wrong.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MODEL, runCli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ctta-bad-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const scenario = (name: string, fields: Record<string, unknown>) =>
  file(`${name}.json`, JSON.stringify({ dataset: 'fashion-mnist', model: MODEL, corruptions: ['fog'], batchSize: 32, ...fields }));

const aFile = file('plain.txt', 'not a folder');
const good = scenario('good', { ordering: { name: 'continual', params: { samplesPerDomain: 32 } } });

/** [what, argv, a pattern the one line must match] */
const CASES: [string, string[], RegExp][] = [
  ['unknown scenario', ['run', 'no-such-scenario'], /scenario not found: no-such-scenario/],
  ['scenario not JSON', ['run', file('broken.json', '{ "dataset": ')], /broken\.json: not valid JSON/],
  ['unknown scenario field', ['run', scenario('field', { batchsize: 3 })], /field\.json: .*unknown field\(s\) batchsize/],
  ['scenario name that is a path', ['run', scenario('named', { name: '../../x' })], /named\.json: name: /],
  ['model path leaving its folder', ['run', scenario('escape', { model: '../../../../etc' })], /model "\.\.\/\.\.\/\.\.\/\.\.\/etc" leaves the folder/],
  ['missing model', ['run', scenario('nomodel', { model: join(dir, 'nothing') }), '--out', join(dir, 'o1')], /model not found/],
  ['unknown method', ['run', good, '--methods', 'nosuch'], /unknown method "nosuch"/],
  ['--set without a dot', ['run', good, '--methods', 'bn', '--set', 'foo'], /--set "foo" is not method\.option=value/],
  ['--set without a value', ['run', good, '--methods', 'bn', '--set', 'bn.alpha'], /--set "bn\.alpha" is not method\.option=value/],
  ['--set with an empty option', ['run', good, '--methods', 'bn', '--set', 'bn.=1'], /--set "bn\.=1" is not method\.option=value/],
  ['bad option value', ['run', good, '--methods', 'bn', '--set', 'bn.alpha="x"'], /method "bn": option alpha/],
  ['unknown option', ['run', good, '--methods', 'bn', '--set', 'bn.nosuch=1'], /method "bn": unknown option nosuch/],
  ['bad shard', ['run', good, '--shard', '4/3'], /--shard "4\/3" is not i\/n/],
  ['missing plug-in', ['run', good, '--plugin', join(dir, 'none.js')], /plug-in .*none\.js could not be loaded/],
  ['--out under a file', ['run', good, '--methods', 'source', '--out', join(aFile, 'runs')], /plain\.txt/],
  ['--out under /proc', ['run', good, '--methods', 'source', '--out', '/proc/self/ctta-runs'], /\/proc/],
  ['pretrain --out under a file', ['pretrain', '--epochs', '1', '--limit', '256', '--out', join(aFile, 'model')], /plain\.txt/],
  ['eval of a missing model', ['eval', '--model', join(dir, 'nothing')], /model not found/],
  ['table of a missing folder', ['table', join(dir, 'none')], /results directory not found/],
  ['merge into a file', ['merge', dir, '--out', aFile], /plain\.txt/],
];

describe('bad inputs through the CLI', () => {
  it.each(CASES)('%s: exit 2 and one line', (_what, argv, pattern) => {
    const r = runCli(argv);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect({ code: r.code, lines: lines.length, trace: /\n\s+at /.test(r.stderr) }).toEqual({ code: 2, lines: 1, trace: false });
    expect(lines[0]).toMatch(pattern);
  });
});
