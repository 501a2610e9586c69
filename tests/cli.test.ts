import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist, shippedFashionMnistDir } from '../src/streams/datasets/fashion-mnist.js';
import { writeIdx } from '../src/streams/datasets/idx.js';
import { ROOT, runCli } from './helpers.js';

// A data folder whose "train" split is the first 8,000 shipped test images and whose "test"
// split is the last 2,000: the CLI trains and evaluates without Debian's package or a network.
let dataDir: string;
let modelDir: string;

beforeAll(async () => {
  const root = mkdtempSync(join(tmpdir(), 'ctta-cli-'));
  dataDir = join(root, 'data');
  modelDir = join(root, 'model');
  const test = await loadFashionMnist('test', { allowDownload: false });
  const px = 28 * 28;
  await writeIdx(join(dataDir, 'train-images-idx3-ubyte.gz'), [8000, 28, 28], test.images.subarray(0, 8000 * px), { gzip: true });
  await writeIdx(join(dataDir, 'train-labels-idx1-ubyte.gz'), [8000], Uint8Array.from(test.labels.subarray(0, 8000)), { gzip: true });
  await writeIdx(join(dataDir, 't10k-images-idx3-ubyte.gz'), [2000, 28, 28], test.images.subarray(8000 * px), { gzip: true });
  await writeIdx(join(dataDir, 't10k-labels-idx1-ubyte.gz'), [2000], Uint8Array.from(test.labels.subarray(8000)), { gzip: true });
});

describe('ctta CLI', () => {
  it('the built bin is executable as the package.json bin entry (what npx ctta runs)', () => {
    const bin = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).bin.ctta as string;
    const r = spawnSync(join(ROOT, bin), ['--version'], { encoding: 'utf8' });
    expect(r.error?.message ?? '').toBe('');
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('pretrain: 1 seeded epoch on 2,000 images beats chance, and eval reproduces the manifest accuracy', () => {
    const r = runCli(['pretrain', '--backend', 'wasm', '--data-dir', dataDir, '--epochs', '1', '--limit', '2000', '--batch-size', '32', '--seed', '2', '--quiet', '--out', modelDir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(modelDir, 'manifest.json'), 'utf8'));
    expect(manifest.cleanTestAccuracy).toBeGreaterThan(0.4);
    expect(manifest.command).toMatch(/^ctta pretrain --backend wasm --data-dir \S+ --epochs 1 --limit 2000/);
    expect(manifest.createdWith.backend).toBe('wasm');
    const e = runCli(['eval', '--model', modelDir, '--data-dir', dataDir, '--json']);
    expect(e.code).toBe(0);
    const result = JSON.parse(e.stdout);
    expect(result.accuracy).toBeCloseTo(manifest.cleanTestAccuracy, 10);
    expect(result.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(2000);
  });

  it('eval prints accuracy, per-class accuracy and a confusion matrix', () => {
    const e = runCli(['eval', '--model', modelDir, '--data-dir', dataDir, '--quiet']);
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/clean accuracy \d+\.\d\d%/);
    expect(e.stdout).toMatch(/per-class accuracy:[\s\S]*Ankle boot/);
    expect(e.stdout).toMatch(/confusion matrix/);
  });

  it('show draws one row per domain; list names corruptions and scenarios', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'ctta-show-')), 'grid.png');
    const r = runCli(['show', 'fmnist-c-continual', '--per-domain', '4', '--scale', '2', '--out', out]);
    expect(r.code).toBe(0);
    const meta = await sharp(out).metadata();
    expect(meta.format).toBe('png');
    expect(meta.height).toBe(15 * (28 * 2 + 2)); // 15 domains
    const corruptions = runCli(['list', 'corruptions']).stdout;
    expect(corruptions).toMatch(/gaussian_noise[\s\S]*jpeg_compression[\s\S]*saturate/);
    expect(runCli(['list', 'scenarios']).stdout).toMatch(/fmnist-c-continual\s+fashion-mnist\s+continual/);
    // Each method's per-dataset defaults are printed beside its options.
    const methods = runCli(['list', 'methods']).stdout;
    expect(methods).toMatch(/cotta .*\n.*options: .*ap=0\.92[\s\S]*cifar100: .*ap=0\.72[\s\S]*imagenet: .*restore=0\.001/);
    expect(methods).toMatch(/eata [\s\S]*cifar100: .*dMargin=0\.1/);
    expect(runCli(['list', 'things']).code).toBe(2);
  });

  it('every command has --help with examples', () => {
    for (const cmd of ['info', 'list', 'show', 'pretrain', 'eval']) {
      const r = runCli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Examples:/);
    }
  });

  it('bad input: one line naming the problem and the fix, exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['pretrain', '--model', 'resnet9', '--out', join(tmpdir(), 'x'), '--data-dir', dataDir], /unknown model "resnet9".*fix: use one of: resnet8/],
      [['info', '--backend', 'gpu'], /unknown backend "gpu".*fix: use one of: auto, tensorflow-gpu, tensorflow, wasm, cpu/],
      [['eval', '--model', '/nonexistent/model'], /model not found: \/nonexistent\/model/],
      [['eval', '--model', modelDir, '--data-dir', '/nonexistent/data'], /--data-dir \/nonexistent\/data does not exist.*fix:/],
      [['pretrain', '--epochs', 'many', '--out', 'x'], /--epochs must be an integer >= 1, got "many"/],
      [['show', 'no-such-scenario', '--out', 'x.png'], /scenario not found: no-such-scenario/],
    ];
    for (const [args, pattern] of cases) {
      const r = runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')[0]).toMatch(pattern);
      expect(r.stderr).not.toMatch(/    at /); // no stack trace
    }
  });

  it('a truncated IDX file is reported with its name and expected size', () => {
    const broken = mkdtempSync(join(tmpdir(), 'ctta-broken-'));
    const src = shippedFashionMnistDir();
    copyFileSync(join(src, 't10k-labels-idx1-ubyte.gz'), join(broken, 't10k-labels-idx1-ubyte.gz'));
    const bytes = readFileSync(join(src, 't10k-images-idx3-ubyte.gz'));
    writeFileSync(join(broken, 't10k-images-idx3-ubyte.gz'), bytes.subarray(0, bytes.length / 2));
    const r = runCli(['eval', '--model', modelDir, '--data-dir', broken]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/t10k-images-idx3-ubyte\.gz/);
    expect(r.stderr).not.toMatch(/    at /);
  });
});
