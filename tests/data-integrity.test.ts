/**
 * Data integrity: a data folder the user names that holds only part of a split is an error naming
 * the missing file (never a silent fall-back to another copy); every file of a multi-file source
 * is checked against the others before any image is produced; error messages name files and
 * what is structurally wrong, never bytes of the files.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

import { CttaError } from '../src/errors.js';
import { rejection } from './helpers.js';
import {
  fashionMnistCacheDir,
  loadDataset,
  loadFashionMnist,
  locateFashionMnist,
  shippedFashionMnistDir,
  writeIdx,
} from '../src/streams/datasets/index.js';
import {
  encodeNpy,
  indexImageFolder,
  indexImageNetC,
  listCifarCCorruptions,
  readCifarBinary,
  readCifarC,
  readNpyHeader,
  writeNpy,
} from '../src/streams/datasets/readers/index.js';
import { parseScenario } from '../src/streams/scenario.js';
import { openStream } from '../src/streams/stream.js';

let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ctta-integrity-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
beforeEach(async () => {
  vi.stubEnv('XDG_CACHE_HOME', await fresh('xdg'));
  vi.stubEnv('CTTA_DATA_DIR', undefined);
  vi.stubEnv('CTTA_FASHION_MNIST_MIRROR', 'http://127.0.0.1:9/'); // never reached: nothing may download
});
afterEach(() => {
  vi.unstubAllEnvs();
});

async function fresh(name: string): Promise<string> {
  const dir = join(root, `${name}-${counter++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

// ------------------------------------------------------------------------------------------------
// Fashion-MNIST

const FILES = {
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
} as const;

async function writeImages(dir: string, split: 'train' | 'test', n: number, gzip = true): Promise<void> {
  await writeIdx(join(dir, FILES[split].images + (gzip ? '.gz' : '')), [n, 28, 28], new Uint8Array(n * 784).fill(9), { gzip });
}
async function writeLabels(dir: string, split: 'train' | 'test', n: number, gzip = true): Promise<void> {
  await writeIdx(join(dir, FILES[split].labels + (gzip ? '.gz' : '')), [n], Uint8Array.from({ length: n }, (_, i) => i % 10), { gzip });
}

describe('Fashion-MNIST: a --data-dir holding part of a split', () => {
  it('images without labels is an error naming both files, not the shipped test split', async () => {
    const dir = await fresh('fm-images-only');
    await writeImages(dir, 'test', 3);
    const err = await rejection(loadFashionMnist('test', { dataDir: dir, allowDownload: false }));
    expect(err.message).toBe(`${dir} holds t10k-images-idx3-ubyte.gz but not t10k-labels-idx1-ubyte.gz of the fashion-mnist test split`);
    expect(err.fix).toContain('t10k-labels-idx1-ubyte');
    expect(err.fix).toContain('--data-dir');
    // Through the registry (what the CLI calls), too.
    const viaRegistry = await rejection(loadDataset('fashion-mnist', 'test', { dataDir: dir }));
    expect(viaRegistry.message).toBe(err.message);
  });

  it('train images without train labels does not fall back to the user cache', async () => {
    const dir = await fresh('fm-train-images');
    await writeImages(dir, 'train', 2);
    const cache = fashionMnistCacheDir();
    await writeImages(cache, 'train', 4);
    await writeLabels(cache, 'train', 4);
    const err = await rejection(loadFashionMnist('train', { dataDir: dir, allowDownload: false, systemDir: null }));
    expect(err.message).toContain(`${dir} holds train-images-idx3-ubyte.gz but not train-labels-idx1-ubyte.gz`);
    expect(err.message).toContain('fashion-mnist train split');
  });

  it('labels without images in CTTA_DATA_DIR (raw names, in the subfolder) names the variable in the fix', async () => {
    const dir = await fresh('fm-env');
    await writeLabels(join(dir, 'fashion-mnist'), 'test', 3, false);
    vi.stubEnv('CTTA_DATA_DIR', dir);
    const err = await rejection(loadFashionMnist('test', { allowDownload: false }));
    expect(err.message).toBe(
      `${dir} holds fashion-mnist/t10k-labels-idx1-ubyte but not t10k-images-idx3-ubyte.gz of the fashion-mnist test split`,
    );
    expect(err.fix).toContain('CTTA_DATA_DIR');
  });

  it('one file directly in the folder and the other in its subfolder is an error', async () => {
    const dir = await fresh('fm-split-places');
    await writeImages(dir, 'test', 3);
    await writeLabels(join(dir, 'fashion-mnist'), 'test', 3);
    const err = await rejection(loadFashionMnist('test', { dataDir: dir, allowDownload: false }));
    expect(err.message).toContain(`${dir} holds t10k-images-idx3-ubyte.gz but not t10k-labels-idx1-ubyte.gz`);
  });

  it('a stray file directly in the folder is not hidden by a complete copy in the subfolder', async () => {
    const dir = await fresh('fm-stray');
    await writeLabels(dir, 'test', 3);
    await writeImages(join(dir, 'fashion-mnist'), 'test', 5);
    await writeLabels(join(dir, 'fashion-mnist'), 'test', 5);
    const err = await rejection(loadFashionMnist('test', { dataDir: dir, allowDownload: false }));
    expect(err.message).toContain(`${dir} holds t10k-labels-idx1-ubyte.gz but not t10k-images-idx3-ubyte.gz`);
  });

  it('the look-up stops at the partial folder and says so', async () => {
    const dir = await fresh('fm-locate');
    await writeImages(dir, 'test', 3);
    const loc = locateFashionMnist('test', { dataDir: dir });
    expect(loc.found).toBeUndefined();
    expect(loc.tried.map((t) => t.kind)).toEqual(['data-dir']); // not the subfolder, the cache or the shipped copy
    expect(loc.partial).toMatchObject({ dir, found: [join(dir, 't10k-images-idx3-ubyte.gz')], missing: ['t10k-labels-idx1-ubyte'] });
  });

  it('a folder holding none of the split still falls back, and a complete one is used', async () => {
    const dir = await fresh('fm-other-split');
    await writeImages(dir, 'train', 2);
    await writeLabels(dir, 'train', 2);
    const test = await loadFashionMnist('test', { dataDir: dir, allowDownload: false });
    expect(test.source).toBe(shippedFashionMnistDir());
    const train = await loadFashionMnist('train', { dataDir: dir, allowDownload: false });
    expect([train.source, train.n]).toEqual([dir, 2]);
    // Nowhere at all: the message still names the folder.
    const empty = await fresh('fm-empty');
    const err = await rejection(loadFashionMnist('train', { dataDir: empty, allowDownload: false, systemDir: null }));
    expect(err.message).toContain(empty);
  });
});

// ------------------------------------------------------------------------------------------------
// CIFAR-10-C / CIFAR-100-C

const PER = 4; // images per severity in the fixtures
const IMG = 32 * 32 * 3;

async function cifarC(dir: string, corruptions: Record<string, number[]>, labelRows = 5 * PER): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeNpy(join(dir, 'labels.npy'), Int32Array.from({ length: labelRows }, (_, i) => i % 10), [labelRows]);
  for (const [name, shape] of Object.entries(corruptions)) {
    const size = shape.reduce((a, b) => a * b, 1);
    await writeNpy(join(dir, `${name}.npy`), new Uint8Array(size).fill(name.length), shape);
  }
}

describe('CIFAR-10-C: every corruption file is checked', () => {
  const good = [5 * PER, 32, 32, 3];

  it('a corruption file of another shape is an error naming it, even when another one is read', async () => {
    const dir = join(await fresh('c10c-shape'), 'CIFAR-10-C');
    await cifarC(dir, { gaussian_noise: good, fog: [3 * PER, 32, 32, 3] });
    const err = await rejection(readCifarC(dir, { corruption: 'gaussian_noise', severity: 1 }));
    expect(err.message).toContain(join(dir, 'fog.npy'));
    expect(err.message).toContain('found uint8 [12, 32, 32, 3]');
    expect(err.message).toContain('expected uint8 [20, 32, 32, 3]');
    expect(err.message).toContain('gaussian_noise.npy');
  });

  it('other sides, channels and dtypes are caught too', async () => {
    const dir = await fresh('c10c-kinds');
    await cifarC(dir, { gaussian_noise: good, snow: [5 * PER, 28, 28, 3] });
    expect((await rejection(readCifarC(dir, { corruption: 'gaussian_noise', severity: 2 }))).message).toMatch(/snow\.npy: found uint8 \[20, 28, 28, 3\], expected uint8 \[20, 32, 32, 3\]/);
    await rm(join(dir, 'snow.npy'));
    await writeNpy(join(dir, 'frost.npy'), new Float32Array(5 * PER * IMG), good);
    expect((await rejection(readCifarC(dir, { corruption: 'gaussian_noise', severity: 2 }))).message).toMatch(/frost\.npy: found float32 \[20, 32, 32, 3\]/);
  });

  it('a truncated corruption file is found before any image is read', async () => {
    const dir = await fresh('c10c-trunc');
    await cifarC(dir, { gaussian_noise: good });
    const bytes = encodeNpy(new Uint8Array(5 * PER * IMG), good);
    await writeFile(join(dir, 'contrast.npy'), bytes.subarray(0, bytes.length - IMG));
    const err = await rejection(readCifarC(dir, { corruption: 'gaussian_noise', severity: 1 }));
    expect(err.message).toContain(join(dir, 'contrast.npy'));
    expect(err.message).toContain('truncated');
  });

  it('the corruptions a caller will read later must exist', async () => {
    const dir = await fresh('c10c-list');
    await cifarC(dir, { gaussian_noise: good, fog: good });
    const ok = await readCifarC(dir, { corruption: 'gaussian_noise', severity: 1, corruptions: ['gaussian_noise', 'fog'] });
    expect(ok.n).toBe(PER);
    const err = await rejection(readCifarC(dir, { corruption: 'gaussian_noise', severity: 1, corruptions: ['fog', 'zoom_blur'] }));
    expect(err.message).toContain(join(dir, 'zoom_blur.npy'));
    expect(err.fix).toContain('available corruptions: fog, gaussian_noise');
  });

  it('a scenario fails when opened, not half-way, when a later domain has a bad file', async () => {
    const dataDir = await fresh('c10c-scenario');
    await cifarC(join(dataDir, 'CIFAR-10-C'), { gaussian_noise: good, fog: [5 * PER, 32, 32, 1] });
    const scenario = parseScenario(
      { dataset: 'cifar10-c', model: 'm', corruptions: ['gaussian_noise', 'fog'], severities: [1], batchSize: 2 },
      'c10c.json',
    );
    const err = await rejection(openStream(scenario, 0, { dataDir }));
    expect(err.message).toContain(join(dataDir, 'CIFAR-10-C', 'fog.npy'));
    expect(err.message).toContain('found uint8 [20, 32, 32, 1]');
  });

  it('a corruption file without labels.npy is not hidden by a complete subfolder', async () => {
    const dir = await fresh('c10c-partial');
    await writeNpy(join(dir, 'gaussian_noise.npy'), new Uint8Array(5 * PER * IMG), good);
    await cifarC(join(dir, 'CIFAR-10-C'), { gaussian_noise: good });
    const err = await rejection(readCifarC(dir, { corruption: 'gaussian_noise', severity: 1 }));
    expect(err.message).toBe(`${dir} holds gaussian_noise.npy but not labels.npy of the CIFAR-10-C / CIFAR-100-C test split`);
    expect((await rejection(listCifarCCorruptions(dir, 'cifar10-c'))).message).toContain('of the cifar10-c test split');
  });
});

// ------------------------------------------------------------------------------------------------
// CIFAR binary batches

function records(n: number, label = 1): Uint8Array {
  const out = new Uint8Array(n * 3073);
  for (let i = 0; i < n; i++) out[i * 3073] = label;
  return out;
}

describe('CIFAR binary: every batch of the split is checked', () => {
  it('a data batch of another size is an error naming it', async () => {
    const dir = await fresh('c10-sizes');
    for (let b = 1; b <= 5; b++) await writeFile(join(dir, `data_batch_${b}.bin`), records(b === 3 ? 2 : 3));
    const err = await rejection(readCifarBinary(dir, { split: 'train' }));
    expect(err.message).toBe(`${join(dir, 'data_batch_3.bin')}: 2 records (6146 bytes), expected 3 records (9219 bytes) like data_batch_1.bin`);
  });

  it('batches past the limit must still be there and whole', async () => {
    const dir = await fresh('c10-limit');
    await writeFile(join(dir, 'data_batch_1.bin'), records(3));
    const missing = await rejection(readCifarBinary(dir, { split: 'train', limit: 2 }));
    expect(missing.message).toBe(`${dir} holds data_batch_1.bin but not data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin of the cifar10 train split`);
    for (let b = 2; b <= 5; b++) await writeFile(join(dir, `data_batch_${b}.bin`), b === 4 ? records(3).subarray(0, 9000) : records(3));
    const cut = await rejection(readCifarBinary(dir, { split: 'train', limit: 2 }));
    expect(cut.message).toContain(join(dir, 'data_batch_4.bin'));
    expect(cut.message).toContain('3073-byte records');
  });

  it('part of the train split directly in --data-dir is not hidden by the standard subfolder', async () => {
    const dir = await fresh('c10-partial');
    for (let b = 2; b <= 5; b++) await writeFile(join(dir, `data_batch_${b}.bin`), records(3));
    const sub = join(dir, 'cifar-10-batches-bin');
    await mkdir(sub);
    for (let b = 1; b <= 5; b++) await writeFile(join(sub, `data_batch_${b}.bin`), records(3));
    await writeFile(join(sub, 'test_batch.bin'), records(3));
    const err = await rejection(loadDataset('cifar10', 'train', { dataDir: dir }));
    expect(err.message).toBe(`${dir} holds data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin but not data_batch_1.bin of the cifar10 train split`);
    expect(err.fix).toContain('--data-dir');
    // The test split is not in the folder itself at all: the subfolder's is used.
    expect((await loadDataset('cifar10', 'test', { dataDir: dir })).source).toBe(sub);
  });
});

// ------------------------------------------------------------------------------------------------
// ImageNet-C folders

describe('ImageNet-C: the domains a stream will read are checked up front', () => {
  it('a missing (corruption, severity) or a folder with other classes is an error naming it', async () => {
    const { default: sharp } = await import('sharp');
    const rootDir = await fresh('inc');
    const put = async (corruption: string, severity: number, wnid: string) => {
      const d = join(rootDir, corruption, String(severity), wnid);
      await mkdir(d, { recursive: true });
      await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toFile(join(d, 'a.png'));
    };
    for (const w of ['n01', 'n02']) {
      await put('gaussian_noise', 5, w);
      await put('fog', 5, w);
    }
    await put('snow', 5, 'n01');
    const domains = [
      { corruption: 'gaussian_noise', severity: 5 },
      { corruption: 'fog', severity: 5 },
    ];
    const ok = await indexImageNetC(rootDir, { corruption: 'gaussian_noise', severity: 5, size: 8, domains });
    expect(ok.n).toBe(2);
    const missing = await rejection(
      indexImageNetC(rootDir, { corruption: 'gaussian_noise', severity: 5, size: 8, domains: [...domains, { corruption: 'fog', severity: 3 }] }),
    );
    expect(missing.message).toContain(join(rootDir, 'fog', '3'));
    const classes = await rejection(
      indexImageNetC(rootDir, { corruption: 'gaussian_noise', severity: 5, size: 8, domains: [...domains, { corruption: 'snow', severity: 5 }] }),
    );
    expect(classes.message).toBe(`${join(rootDir, 'snow', '5')} holds 1 class folders, expected the 2 of ${join(rootDir, 'gaussian_noise', '5')}: n02 is missing`);
  });
});

// ------------------------------------------------------------------------------------------------
// Messages name files and structure, never their bytes

/** A .npy file whose header dict is `dict` (padded as numpy pads). */
async function npyWithHeader(file: string, dict: string): Promise<void> {
  const body = dict.padEnd(Math.ceil((10 + dict.length + 1) / 64) * 64 - 10 - 1, ' ') + '\n';
  const bytes = new Uint8Array(10 + body.length + 16);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(bytes.buffer).setUint16(8, body.length, true);
  bytes.set(new TextEncoder().encode(body), 10);
  await writeFile(file, bytes);
}

describe('error messages do not quote file contents', () => {
  it('malformed .npy headers are described, not echoed', async () => {
    const dir = await fresh('npy-secret');
    const cases: [string, string, RegExp][] = [
      ['name.npy', "{'descr': '|u1', 'fortran_order': False, 'shape': (16,), 'x': SECRETNAME}", /malformed \.npy header/],
      ['garbage.npy', "{'descr': '|u1', 'fortran_order': False, 'shape': (16,), @SECRET}", /malformed \.npy header/],
      ['struct.npy', "{'descr': [('SECRETFIELD', '<i4')], 'fortran_order': False, 'shape': (4,), }", /structured dtype/],
      ['shape.npy', "{'descr': '|u1', 'fortran_order': False, 'shape': ('SECRETDIM',), }", /shape/],
      ['dtype.npy', "{'descr': 'SECRETTYPE', 'fortran_order': False, 'shape': (16,), }", /unsupported dtype/],
      ['list.npy', "['SECRETLIST']", /not a dict/],
    ];
    for (const [name, dict, pattern] of cases) {
      const file = join(dir, name);
      await npyWithHeader(file, dict);
      const err = await rejection(readNpyHeader(file));
      expect(err.message).toContain(file);
      expect(err.message).toMatch(pattern);
      expect(err.toLine()).not.toMatch(/SECRET/);
    }
  });

  it('an undecodable image is named without its bytes', async () => {
    const dir = await fresh('img-secret');
    await mkdir(join(dir, 'cls'));
    // An SVG under a .png name: the decoder's XML parser quotes the tag it choked on.
    await writeFile(join(dir, 'cls', 'a.png'), '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><SECRETTAG></svg>');
    const lazy = await indexImageFolder(dir, { size: 4 });
    const err = await rejection(lazy.readImages([0]));
    expect(err.message).toContain(join(dir, 'cls', 'a.png'));
    expect(err.message).toContain('cannot decode');
    expect(err.toLine()).not.toMatch(/SECRET/);
  });
});
