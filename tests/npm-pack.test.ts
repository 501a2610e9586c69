// The library from a user's own project: `npm pack`, install the tarball in an empty folder, and
// run the README's library example as written (a shipped scenario and model by name).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

/** The first ```js block of the README's "Library API" section. */
function readmeExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library API'));
  const m = /```js\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README has no js example under "Library API"');
  return m[1]!;
}

describe('npm pack', () => {
  it('an empty project installs the tarball and runs the README library example', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctta-pack-'));
    // The test command builds dist/ first; pack what is built (no prepare script here).
    const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').pop()!;
    const project = join(dir, 'project');
    execFileSync('mkdir', [project]);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
    // Dependencies come from npm's cache (filled by `npm ci`) or the registry.
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--silent', join(dir, packed)], { cwd: project, encoding: 'utf8', stdio: 'pipe' });
    writeFileSync(join(project, 'example.mjs'), readmeExample());
    const r = spawnSync(process.execPath, ['example.mjs'], { cwd: project, encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^tent: \d+\.\d% error over 640 images$/m);
    const accuracy = Number(/^clean accuracy: (\d+\.\d)%$/m.exec(r.stdout)?.[1]);
    expect(accuracy).toBeGreaterThan(85);
  }, 600_000);
});
