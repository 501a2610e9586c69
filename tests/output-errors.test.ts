/**
 * Filesystem failures of the commands that write (merge, show, table --out, plot --out) are one
 * line on stderr naming the path and the problem, exit code 2, reported before any work, and
 * never hang (/proc) or leave a half-written file; Ctrl-C during a progress bar shows the cursor
 * again, prints one line on how to resume and exits with 130.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { CttaError } from '../src/errors.js';
import { mergeResults } from '../src/report/merge.js';
import { checkOutputDir, checkOutputFile, describeFsError, ensureOutputDir, ensureOutputFile, writeFileAtomic } from '../src/util/output-dir.js';
import { ROOT } from './helpers.js';

// Writes and copies can be made to fail half-way, as on a full disk (ENOSPC cannot be produced
// for real here): the mock writes half the bytes, then throws.
const failing = vi.hoisted(() => ({ code: undefined as string | undefined }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const fail = (syscall: string) => Object.assign(new Error(`${failing.code}: simulated failure, ${syscall}`), { code: failing.code, syscall });
  const open = (async (...args: Parameters<typeof fs.open>) => {
    const handle = await fs.open(...args);
    if (!failing.code) return handle;
    const writeFile = handle.writeFile.bind(handle);
    handle.writeFile = (async (data: string | Uint8Array) => {
      await writeFile(typeof data === 'string' ? data.slice(0, data.length >> 1) : data.subarray(0, data.length >> 1));
      throw fail('write');
    }) as typeof handle.writeFile;
    return handle;
  }) as typeof fs.open;
  const copyFile = (async (src: string, dest: string) => {
    if (!failing.code) return fs.copyFile(src, dest);
    const bytes = await fs.readFile(src);
    await fs.writeFile(dest, bytes.subarray(0, bytes.length >> 1));
    throw fail('copyfile');
  }) as typeof fs.copyFile;
  return { ...fs, default: { ...fs, open, copyFile }, open, copyFile };
});

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/**
 * Runs the CLI from source (`node --import tsx src/cli/main.ts`, so no build is needed) in a
 * child process, killed after `timeoutMs`. `asUser` runs the command as that uid (tests run as
 * root, and root may write anywhere: an unprivileged user meets permission errors). The child
 * starts as root and drops privileges after loading the code (tests/cli-as-user.ts): started
 * directly as that user it could not even load the code from a checkout only root can read.
 */
function runCli(args: string[], { timeoutMs, asUser }: { timeoutMs?: number; asUser?: number } = {}): Promise<CliResult> {
  const entry = asUser === undefined ? ['src/cli/main.ts'] : ['tests/cli-as-user.ts', String(asUser)];
  return runNode(['--import', 'tsx', ...entry, ...args], { timeoutMs });
}

function runNode(args: string[], { timeoutMs = 120_000 }: { timeoutMs?: number } = {}): Promise<CliResult> {
  const started = Date.now();
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, seconds: (Date.now() - started) / 1000 });
    });
  });
}

/** Exit code 2, exactly one non-empty line on stderr, no stack trace, the line matching `pattern`. */
function expectOneLine(r: CliResult, pattern: RegExp, label: string): void {
  expect(r.signal, `${label}: killed (hung?) after ${r.seconds}s`).toBe(null);
  // (Child output in messages is JSON-quoted: vitest would parse a child's stack trace as its own.)
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, `${label}: stderr ${JSON.stringify(r.stderr)}`).toHaveLength(1);
  expect(r.stderr, label).not.toContain('    at ');
  expect(r.stderr, label).not.toMatch(/internal error/);
  expect(lines[0], label).toMatch(/^ctta: /);
  expect(lines[0], label).toMatch(pattern);
  expect(r.code, `${label}: stderr ${JSON.stringify(r.stderr)}`).toBe(2);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let root: string;
let results: string;
let aFile: string;
let aDir: string;
/** A folder an unprivileged user cannot write to, and that user (undefined: no such test). */
let readOnly: string;
let unprivileged: number | undefined;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ctta-output-errors-'));
  chmodSync(root, 0o755); // the unprivileged user must be able to read the fixtures
  // Two real finished runs of the published results.
  results = join(root, 'results');
  for (const method of ['source', 'bn']) {
    mkdirSync(join(results, 'fmnist-c-continual', method), { recursive: true });
    cpSync(join(ROOT, 'results', 'fmnist-c-continual', method, 'seed-0.jsonl'), join(results, 'fmnist-c-continual', method, 'seed-0.jsonl'));
  }
  aFile = join(root, 'a-file');
  writeFileSync(aFile, 'not a folder\n');
  aDir = join(root, 'a-folder');
  mkdirSync(aDir);
  readOnly = join(root, 'read-only');
  mkdirSync(readOnly);
  chmodSync(readOnly, 0o555);
  unprivileged = process.getuid?.() === 0 ? 65534 : process.getuid?.();
});

/** The command line of each command, writing to `out`, and the file name it writes. */
const COMMANDS: Record<string, { args: (out: string) => string[]; file: string; folder: boolean }> = {
  merge: { args: (out) => ['merge', results, '--out', out], file: 'merged', folder: true },
  show: { args: (out) => ['show', 'fmnist-c-continual', '--per-domain', '1', '--scale', '1', '--out', out], file: 'grid.png', folder: false },
  'table --out': { args: (out) => ['table', results, '--out', out], file: 'table.md', folder: false },
  'plot --out': { args: (out) => ['plot', results, '--out', out], file: 'online.svg', folder: false },
};

describe.each(Object.entries(COMMANDS))('%s: a bad output path is one line, exit code 2', (name, command) => {
  it('under a regular file (ENOTDIR), the wrong kind (file/folder), under /proc, not writable', async () => {
    const underFile = join(aFile, 'sub', command.file);
    // merge wants a folder: give it a file; the others want a file: give them a folder.
    const wrongKind = command.folder ? aFile : join(aDir, `x${command.file.slice(command.file.indexOf('.'))}`);
    if (!command.folder) mkdirSync(wrongKind, { recursive: true });
    const inProc = `/proc/ctta-test-${process.pid}/sub/${command.file}`;
    const cases: [string, string, RegExp][] = [
      ['under a file', underFile, new RegExp(`${escape(underFile)}.*${escape(aFile)} is a file, not a folder`)],
      ['wrong kind', wrongKind, new RegExp(`${escape(wrongKind)} is a ${command.folder ? 'file, not a folder' : 'folder, not a file'}`)],
      ['under /proc', inProc, new RegExp(`${escape(inProc)} is inside /proc, a virtual file system`)],
    ];
    const runs = await Promise.all(cases.map(([, out]) => runCli(command.args(out), { timeoutMs: 60_000 })));
    cases.forEach(([label, out], i) => {
      expectOneLine(runs[i]!, cases[i]![2], `${name} ${label}`);
      if (label !== 'wrong kind') expect(existsSync(out), `${name} ${label}: nothing written`).toBe(false);
    });
    // Under /proc: no recursive-mkdir spin; the reply comes as fast as any other error.
    expect(runs[2]!.seconds).toBeLessThan(Math.max(runs[0]!.seconds, runs[1]!.seconds) + 15);
  });

  it.skipIf(process.platform === 'win32')('a folder the user may not write to: permission denied', async () => {
    if (unprivileged === undefined) return;
    const out = join(readOnly, 'sub', command.file);
    const r = await runCli(command.args(out), { timeoutMs: 60_000, asUser: process.getuid?.() === 0 ? unprivileged : undefined });
    expectOneLine(r, new RegExp(`${escape(out)}.*permission denied`), `${name} read-only`);
    expect(readdirSync(readOnly)).toEqual([]);
  });
});

describe('output problems come before any work', () => {
  it('a bad --out is reported even when the inputs are missing, and creates nothing', async () => {
    const missing = join(root, 'no-such-results');
    const out = join(aFile, 'x');
    const runs = await Promise.all([
      runCli(['merge', missing, '--out', out]),
      runCli(['table', missing, '--out', join(out, 't.md')]),
      runCli(['plot', missing, '--out', join(out, 'p.svg')]),
      runCli(['show', 'no-such-scenario', '--out', join(out, 'g.png')]),
    ]);
    for (const r of runs) expectOneLine(r, new RegExp(`${escape(aFile)} is a file, not a folder`), 'before work');
  });

  it('show --out must be a .png (it writes PNG bytes); plot --out must be .svg, .png or .json', async () => {
    const svg = join(root, 'show-out', 'grid.svg');
    const [show, plot] = await Promise.all([
      runCli(['show', 'fmnist-c-continual', '--out', svg]),
      runCli(['plot', results, '--out', join(root, 'plot-out', 'online.gif')]),
    ]);
    expectOneLine(show, new RegExp(`--out ${escape(svg)}: show writes a PNG image.*\\.png`), 'show --out x.svg');
    expect(existsSync(join(root, 'show-out'))).toBe(false);
    expect(plot.code).toBe(2);
    expect(plot.stderr).toMatch(/--out must end in .svg or .png/);
    expect(existsSync(join(root, 'plot-out'))).toBe(false);
  });

  it('plot writes what the extension says', async () => {
    const dir = join(root, 'plots', 'new', 'folder');
    const [svg, png, json] = await Promise.all(['svg', 'png', 'json'].map((ext) => runCli(['plot', results, '--out', join(dir, `online.${ext}`)])));
    for (const r of [svg, png, json]) expect(r.code, JSON.stringify(r.stderr)).toBe(0);
    expect(readFileSync(join(dir, 'online.svg'), 'utf8')).toMatch(/^<svg/);
    expect(readFileSync(join(dir, 'online.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(JSON.parse(readFileSync(join(dir, 'online.json'), 'utf8')).$schema).toMatch(/vega-lite/);
    expect(readdirSync(dir).sort()).toEqual(['online.json', 'online.png', 'online.svg']); // no temporary files
  });
});

describe('output-dir helpers', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: something, open '/x'`), { code });

  it('describeFsError names the problem in words', () => {
    expect(describeFsError(errno('EACCES'))).toBe('permission denied');
    expect(describeFsError(errno('EPERM'))).toBe('permission denied');
    expect(describeFsError(errno('EROFS'))).toBe('read-only file system');
    expect(describeFsError(errno('ENOSPC'))).toBe('no space left on device');
    expect(describeFsError(errno('EDQUOT'))).toBe('disk quota exceeded');
    expect(describeFsError(errno('ENOTDIR'))).toBe('a part of the path is a file, not a folder');
    expect(describeFsError(errno('EISDIR'))).toBe('is a folder, not a file');
    expect(describeFsError(errno('EWHATEVER'))).toBe("EWHATEVER: EWHATEVER: something, open '/x'");
    expect(describeFsError(new Error('two\nlines'))).toBe('two');
  });

  it('check* creates nothing; ensure* creates one level at a time and refuses virtual file systems, also through a symbolic link', () => {
    const fresh = join(root, 'fresh', 'a', 'b');
    expect(checkOutputDir(fresh)).toBe(fresh);
    expect(checkOutputFile(join(fresh, 't.md'))).toBe(join(fresh, 't.md'));
    expect(existsSync(join(root, 'fresh'))).toBe(false);
    ensureOutputFile(join(fresh, 't.md'));
    expect(readdirSync(fresh)).toEqual([]); // the write check cleaned up
    const link = join(root, 'link-to-proc');
    symlinkSync('/proc/self', link);
    for (const f of [() => ensureOutputDir(join(link, 'x')), () => checkOutputDir('/sys/x'), () => ensureOutputFile('/dev/x/y.md')]) {
      expect(f).toThrow(CttaError);
      expect(f).toThrow(/a virtual file system/);
    }
  });

  it('writeFileAtomic: a write that fails half-way (disk full) keeps the old file and leaves no temporary file', async () => {
    const dir = join(root, 'atomic');
    const file = join(dir, 'table.md');
    await writeFileAtomic(file, 'old table\n');
    expect(readFileSync(file, 'utf8')).toBe('old table\n');
    for (const code of ['ENOSPC', 'EDQUOT', 'EIO']) {
      failing.code = code;
      let caught: unknown;
      try {
        await writeFileAtomic(file, 'new table, much longer than the old one\n'.repeat(100));
      } catch (err) {
        caught = err;
      } finally {
        failing.code = undefined;
      }
      expect(caught).toBeInstanceOf(CttaError);
      const line = (caught as CttaError).toLine();
      expect(line).toContain(`cannot write --out ${file}: ${describeFsError(errno(code))}`);
      expect(line).not.toContain('\n');
      expect(readFileSync(file, 'utf8')).toBe('old table\n');
      expect(readdirSync(dir)).toEqual(['table.md']);
    }
    expect((await catchError(() => writeFileAtomic(file, 'x'))) ?? 'ok').toBe('ok');
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('merge: a copy that fails half-way (disk full) is one CttaError naming the file and leaves no partial file', async () => {
    const out = join(root, 'merge-full');
    failing.code = 'ENOSPC';
    const err = await catchError(() => mergeResults([results], out)).finally(() => (failing.code = undefined));
    expect(err).toBeInstanceOf(CttaError);
    expect((err as CttaError).toLine()).toMatch(new RegExp(`cannot write ${escape(out)}/fmnist-c-continual/\\w+/seed-0\\.jsonl .*no space left on device.*fix: free some space`));
    const left = readdirSync(out, { recursive: true }) as string[];
    expect(left.filter((f) => /partial|\.tmp|write-check/.test(f))).toEqual([]);
    // Nothing half-copied counts as a run: a second merge (with room) completes it.
    expect(await mergeResults([results], out)).toMatchObject({ runs: 2, copied: 2 });
  });
});

async function catchError(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('Ctrl-C during a progress bar', () => {
  const RESUME = 'interrupted: re-run the same command to resume (finished runs are kept)';
  let fixture: string;

  beforeAll(() => {
    // A command in miniature: registers the resume message (or not), draws a bar, then is
    // interrupted by a real SIGINT.
    fixture = join(root, 'interrupt.ts');
    writeFileSync(
      fixture,
      `import { onInterrupt, progressBar } from ${JSON.stringify(join(ROOT, 'src', 'cli', 'progress.ts'))};
const mode = process.argv[2];
const dispose = mode === 'bar-only' ? () => {} : onInterrupt(${JSON.stringify(RESUME)});
const bar = progressBar(10, 'work [{bar}] {percentage}%');
bar.update(3);
if (mode === 'disposed') { bar.stop(); dispose(); }
setTimeout(() => process.kill(process.pid, 'SIGINT'), 300);
setTimeout(() => process.exit(0), 30_000);
`,
    );
  });

  it('prints the resume line and exits with 130 (no terminal)', async () => {
    const r = await runNode(['--import', 'tsx', fixture, 'resume']);
    expect(r.code, JSON.stringify(r.stderr)).toBe(130);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(`ctta: ${RESUME}`);
    expect(r.stderr).not.toContain('    at ');
    const bare = await runNode(['--import', 'tsx', fixture, 'bar-only']);
    expect(bare.code, JSON.stringify(bare.stderr)).toBe(130);
    expect(bare.stderr.trimEnd().split('\n').at(-1)).toBe('ctta: interrupted');
    // Disposed and no bar running: Ctrl-C is Node's default again (killed by the signal).
    const disposed = await runNode(['--import', 'tsx', fixture, 'disposed']);
    expect(disposed.signal).toBe('SIGINT');
  });

  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!hasScript)('on a terminal: stops the bar and shows the cursor again before the line', () => {
    // `script` gives the child a pseudo-terminal, so the bar really hides the cursor.
    const r = spawnSync('script', ['-qfec', `${process.execPath} --import tsx ${fixture} resume`, '/dev/null'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(r.status, JSON.stringify(r.stdout + r.stderr)).toBe(130);
    const hide = r.stdout.lastIndexOf('\x1b[?25l');
    const show = r.stdout.lastIndexOf('\x1b[?25h');
    expect(hide, 'the bar hid the cursor').toBeGreaterThanOrEqual(0);
    expect(show, 'the cursor is shown again').toBeGreaterThan(hide);
    expect(r.stdout.indexOf(`ctta: ${RESUME}`)).toBeGreaterThan(show);
  });
});
