// Plug-ins from any folder: a default export receives the library (with ctta's tfjs and zod), so
// a file outside any project with ctta installed works, in JavaScript or TypeScript; the old
// import-from-'ctta' form fails there with a one-line message saying what to do.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readResults } from '../src/report/results.js';
import { ROOT } from './helpers.js';

/** A folder outside the repository: nothing resolves 'ctta' or '@tensorflow/tfjs' from it. */
function outside(...examples: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctta-plugin-'));
  for (const e of examples) copyFileSync(join(ROOT, 'examples', e), join(dir, e));
  return dir;
}

/** The CLI run from `cwd` (not the repository). */
function cli(cwd: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), ...args], { cwd, encoding: 'utf8', timeout: 600_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('plug-ins from anywhere', () => {
  it('a .js and a .ts plug-in in a folder outside the repo run through the CLI', async () => {
    const dir = outside('pseudo-label.js', 'entropy-min.ts');
    const out = join(dir, 'runs');
    const r = cli(dir, ['run', 'fmnist-c-continual', '--plugin', 'pseudo-label.js', '--plugin', join(dir, 'entropy-min.ts'), '--methods', 'pseudo-label,entropy-last', '--seeds', '0', '--limit', '2', '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const runs = await readResults(out);
    expect(runs.map((x) => x.header.method).sort()).toEqual(['entropy-last', 'pseudo-label']);
    for (const run of runs) expect(run.batches).toHaveLength(2);
  });

  it('ctta list methods --plugin lists a plug-in and its options', () => {
    const dir = outside('entropy-min.ts');
    const r = cli(dir, ['list', 'methods', '--plugin', 'entropy-min.ts']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^entropy-last .*example TypeScript plug-in\)\n\s+options: lr=0\.001$/m);
  });

  it('the shipped examples resolve from the ctta package when not in the working directory', () => {
    const dir = outside();
    const help = cli(dir, ['run', '--help']).stdout;
    const named = [...help.matchAll(/--plugin ([^\s<]\S*)/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(0);
    for (const file of named) expect(existsSync(join(ROOT, file)), file).toBe(true);
    const r = cli(dir, ['list', 'methods', '--plugin', named[0]!]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pseudo-label /m);
  });

  it('a plug-in importing packages it cannot resolve gets one line saying what to do', () => {
    const dir = outside('label-prior.js');
    const r = cli(dir, ['list', 'methods', '--plugin', 'label-prior.js']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^ctta: plug-in label-prior\.js could not be loaded: Cannot find package '@tensorflow\/tfjs'.*\(fix: @tensorflow\/tfjs is not installed beside the plug-in: take it from the argument of a default export/),
    ]);
  });

  it('a missing plug-in names where it was looked for', () => {
    const dir = outside();
    const r = cli(dir, ['list', 'methods', '--plugin', 'nope.js']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/plug-in nope\.js could not be loaded: no such file \(looked in .*nope\.js and .*nope\.js\)/);
  });
});
