import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** This package's version, read from package.json (src/util and dist/util are both 2 levels down). */
export function packageVersion(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}

/**
 * The code that is running: the package version plus, in a git checkout, the commit and whether
 * the work tree had uncommitted changes (a checkpoint trained on a dirty tree cannot be
 * reproduced from its commit alone). Recorded in checkpoint manifests.
 */
export function codeVersion(): { ctta: string; commit?: string; dirty?: boolean } {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const commit = git('rev-parse', 'HEAD');
    const dirty = git('status', '--porcelain', '--untracked-files=no', '--', 'src', 'package.json', 'package-lock.json') !== '';
    return { ctta: packageVersion(), commit, dirty };
  } catch {
    return { ctta: packageVersion() }; // an installed package, or no git: the version is all we know
  }
}
