import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

import { CttaError } from '../src/errors.js';
import { rejection } from './helpers.js';
import {
  FASHION_MNIST_CLASSES,
  datasetDefaultsKey,
  datasetNames,
  listDatasets,
  registerDataset,
  type ImageDataset,
  encodeIdx,
  fashionMnistCacheDir,
  loadDataset,
  loadFashionMnist,
  locateFashionMnist,
  readIdx,
  readIdxImages,
  readIdxLabels,
  shippedFashionMnistDir,
  writeIdx,
  type DownloadProgress,
  type FileChecksum,
} from '../src/streams/datasets/index.js';

let root: string;
let cacheHome: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ctta-datasets-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
async function freshDir(name: string): Promise<string> {
  const dir = join(root, `${name}-${counter++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Deterministic small Fashion-MNIST-shaped arrays: n images of 28x28 and labels 0..9. */
function fakeSplit(n: number, seed: number): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(n * 28 * 28);
  for (let i = 0; i < images.length; i++) images[i] = (i * 31 + seed * 7) & 0xff;
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) labels[i] = (i + seed) % 10;
  return { images, labels };
}

async function writeFakeSplit(dir: string, split: 'train' | 'test', n: number, seed = 0): Promise<void> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const { images, labels } = fakeSplit(n, seed);
  await writeIdx(join(dir, `${prefix}-images-idx3-ubyte.gz`), [n, 28, 28], images, { gzip: true });
  await writeIdx(join(dir, `${prefix}-labels-idx1-ubyte.gz`), [n], labels, { gzip: true });
}

beforeEach(async () => {
  cacheHome = await freshDir('xdg-cache');
  vi.stubEnv('XDG_CACHE_HOME', cacheHome);
  vi.stubEnv('CTTA_DATA_DIR', undefined);
  vi.stubEnv('CTTA_FASHION_MNIST_MIRROR', undefined);
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe('IDX reader/writer', () => {
  it('round-trips uint8 images gzipped and raw, detecting gzip by content', async () => {
    const dir = await freshDir('idx');
    const data = new Uint8Array(3 * 4 * 5).map((_, i) => (i * 13) & 0xff);
    // gzip content under a raw-looking name, raw content under a .gz name
    const gzPath = join(dir, 'imgs-idx3-ubyte');
    const rawPath = join(dir, 'imgs-idx3-ubyte.gz');
    await writeIdx(gzPath, [3, 4, 5], data, { gzip: true });
    await writeIdx(rawPath, [3, 4, 5], data);
    const gzBytes = await readFile(gzPath);
    expect([gzBytes[0], gzBytes[1]]).toEqual([0x1f, 0x8b]);
    expect((await readFile(rawPath)).subarray(0, 4)).toEqual(Buffer.from([0, 0, 8, 3]));
    for (const p of [gzPath, rawPath]) {
      const img = await readIdxImages(p);
      expect(img).toEqual({ n: 3, height: 4, width: 5, data });
      expect(img.data.constructor).toBe(Uint8Array);
    }
    const labels = new Uint8Array([0, 9, 3, 3, 7]);
    await writeIdx(join(dir, 'labels'), [5], labels, { gzip: true });
    expect(await readIdxLabels(join(dir, 'labels'))).toEqual(labels);
  });

  it('round-trips the multi-byte dtypes big-endian', async () => {
    const dir = await freshDir('idx-dtypes');
    const cases = [
      new Int8Array([-128, -1, 0, 127]),
      new Int16Array([-32768, -2, 1, 32767]),
      new Int32Array([-(2 ** 31), -3, 70000, 2 ** 31 - 1]),
      new Float32Array([-1.5, 0, 3.25, 1e20]),
      new Float64Array([Math.PI, -0, 1e-300, -7]),
    ];
    for (const [i, data] of cases.entries()) {
      const p = join(dir, `a${i}`);
      await writeIdx(p, [2, 2], data, { gzip: i % 2 === 0 });
      const arr = await readIdx(p);
      expect(arr.dims).toEqual([2, 2]);
      expect(arr.data).toEqual(data);
      expect(arr.data.constructor).toBe(data.constructor);
    }
    // int32 1-D: magic 0x00000c01 and big-endian payload
    const bytes = encodeIdx([1], new Int32Array([0x01020304]));
    expect([...bytes]).toEqual([0, 0, 0x0c, 1, 0, 0, 0, 1, 1, 2, 3, 4]);
  });

  it('reports a truncated raw file with its name and the expected size', async () => {
    const dir = await freshDir('trunc');
    const p = join(dir, 'short-idx3-ubyte');
    const full = encodeIdx([10, 28, 28], new Uint8Array(10 * 28 * 28));
    await writeFile(p, full.subarray(0, 5000));
    const err = await rejection(readIdxImages(p));
    expect(err.message).toContain(p);
    expect(err.message).toContain(`expected ${16 + 7840} bytes`);
    expect(err.message).toContain('found 5000');
    expect(err.fix).toMatch(/delete it and re-run/);
    expect(err.message).not.toContain('\n');
  });

  it('reports short IDX data inside a valid gzip, and a cut gzip stream', async () => {
    const dir = await freshDir('trunc-gz');
    const full = encodeIdx([10, 28, 28], new Uint8Array(10 * 28 * 28));
    const shortInside = join(dir, 'inside.gz');
    await writeFile(shortInside, gzipSync(full.subarray(0, 1000)));
    const err1 = await rejection(readIdxImages(shortInside));
    expect(err1.message).toContain(shortInside);
    expect(err1.message).toContain('expected 7856 bytes');

    const cut = join(dir, 'cut.gz');
    const gz = gzipSync(full.map((_, i) => (i * 7919) & 0xff));
    await writeFile(cut, gz.subarray(0, Math.floor(gz.length / 2)));
    const err2 = await rejection(readIdxImages(cut));
    expect(err2.message).toContain(cut);
    expect(err2.message).toMatch(/gzip/);
    expect(err2.message).toMatch(/truncated or corrupt/);
  });

  it('names the wrong and the expected magic', async () => {
    const dir = await freshDir('magic');
    const labelsPath = join(dir, 'labels.gz');
    await writeIdx(labelsPath, [4], new Uint8Array([1, 2, 3, 4]), { gzip: true });
    const err = await rejection(readIdxImages(labelsPath));
    expect(err.message).toContain(labelsPath);
    expect(err.message).toContain('0x00000801');
    expect(err.message).toContain('0x00000803');

    const junk = join(dir, 'junk');
    await writeFile(junk, Buffer.from('<html>not found</html>'));
    const err2 = await rejection(readIdxLabels(junk));
    expect(err2.message).toContain(junk);
    expect(err2.message).toMatch(/bad magic number 0x3c68746d/);
    expect(err2.message).toContain('0x00000801');
  });

  it('rejects trailing bytes and a missing file', async () => {
    const dir = await freshDir('extra');
    const p = join(dir, 'long');
    await writeFile(p, Buffer.concat([Buffer.from(encodeIdx([2], new Uint8Array([1, 2]))), Buffer.from([9])]));
    const err = await rejection(readIdxLabels(p));
    expect(err.message).toMatch(/expected 10 bytes .* found 11/);
    const missing = await rejection(readIdx(join(dir, 'nope')));
    expect(missing.message).toContain(join(dir, 'nope'));
    expect(missing.message).toContain('ENOENT');
  });
});

describe('Fashion-MNIST look-up', () => {
  it('prefers dataDir over CTTA_DATA_DIR over the shipped split', async () => {
    const explicit = await freshDir('explicit');
    const fromEnv = await freshDir('env');
    await writeFakeSplit(explicit, 'test', 3, 1);
    await writeFakeSplit(join(fromEnv, 'fashion-mnist'), 'test', 5, 2);
    vi.stubEnv('CTTA_DATA_DIR', fromEnv);

    const a = await loadFashionMnist('test', { dataDir: explicit, allowDownload: false });
    expect(a.n).toBe(3);
    expect(a.source).toBe(explicit);
    expect(a.images).toEqual(fakeSplit(3, 1).images);
    expect([...a.labels]).toEqual([...fakeSplit(3, 1).labels]);

    const b = await loadFashionMnist('test', { allowDownload: false });
    expect(b.n).toBe(5);
    expect(b.source).toBe(join(fromEnv, 'fashion-mnist'));

    vi.stubEnv('CTTA_DATA_DIR', undefined);
    const c = locateFashionMnist('test');
    expect(c.found?.kind).toBe('shipped');
    expect(c.found?.dir).toBe(shippedFashionMnistDir());
    expect(c.tried.map((t) => t.kind)).toEqual(['cache', 'shipped']);
  });

  it('prefers the user cache over the shipped split', async () => {
    await writeFakeSplit(fashionMnistCacheDir(), 'test', 2, 3);
    expect(fashionMnistCacheDir()).toBe(join(cacheHome, 'ctta', 'fashion-mnist'));
    const loc = locateFashionMnist('test');
    expect(loc.found?.kind).toBe('cache');
    expect((await loadFashionMnist('test', { allowDownload: false })).n).toBe(2);
  });

  it('accepts un-gzipped file names', async () => {
    const dir = await freshDir('raw-names');
    const { images, labels } = fakeSplit(4, 5);
    await writeIdx(join(dir, 'train-images-idx3-ubyte'), [4, 28, 28], images);
    await writeIdx(join(dir, 'train-labels-idx1-ubyte'), [4], labels);
    const ds = await loadFashionMnist('train', { dataDir: dir, allowDownload: false, systemDir: null });
    expect(ds.n).toBe(4);
    expect(ds.split).toBe('train');
  });

  it('loads the shipped test split: 10000 images 28x28x1, labels 0..9', async () => {
    const ds = await loadFashionMnist('test', { allowDownload: false });
    expect(ds.source).toBe(shippedFashionMnistDir());
    expect(ds.source.endsWith(join('data', 'fashion-mnist'))).toBe(true);
    expect([ds.n, ds.height, ds.width, ds.channels]).toEqual([10000, 28, 28, 1]);
    expect(ds.images.length).toBe(10000 * 28 * 28);
    expect(ds.labels.length).toBe(10000);
    expect(ds.classNames).toEqual([...FASHION_MNIST_CLASSES]);
    const counts = new Array<number>(10).fill(0);
    for (const l of ds.labels) {
      expect(l >= 0 && l <= 9).toBe(true);
      counts[l]!++;
    }
    expect(counts).toEqual(new Array(10).fill(1000));
  });

  it('names the places tried and the fixes when the train split is nowhere and download is off', async () => {
    const empty = await freshDir('empty');
    const err = await rejection(loadFashionMnist('train', { dataDir: empty, allowDownload: false, systemDir: null }));
    expect(err.message).toContain('train-images-idx3-ubyte.gz');
    expect(err.message).toContain(empty);
    expect(err.message).toContain(join(empty, 'fashion-mnist'));
    expect(err.message).toContain(join(cacheHome, 'ctta', 'fashion-mnist'));
    expect(err.message).toContain(shippedFashionMnistDir());
    expect(err.message).toContain('download disabled');
    expect(err.message).not.toContain('\n');
    expect(err.fix).toContain('apt-get install -y dataset-fashion-mnist');
    expect(err.fix).toContain('--data-dir');
  });

  it('says which file of a pair is missing', async () => {
    const dir = await freshDir('half');
    await writeIdx(join(dir, 'train-labels-idx1-ubyte.gz'), [1], new Uint8Array([1]), { gzip: true });
    const loc = locateFashionMnist('train', { dataDir: dir, systemDir: null });
    expect(loc.found).toBeUndefined();
    expect(loc.tried[0]).toMatchObject({ kind: 'data-dir', dir, missing: ['train-images-idx3-ubyte'] });
    const err = await rejection(loadFashionMnist('train', { dataDir: dir, systemDir: null, allowDownload: false }));
    expect(err.message).toBe(`${dir} holds train-labels-idx1-ubyte.gz but not train-images-idx3-ubyte.gz of the fashion-mnist train split`);
  });

  it.runIf(existsSync('/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz'))(
    'finds the Debian package copy of the train split',
    () => {
      const loc = locateFashionMnist('train');
      expect(loc.found?.kind).toBe('system');
      expect(loc.found?.dir).toBe('/usr/share/datasets/fashion-mnist');
    },
  );

  it('reports images and labels that disagree', async () => {
    const dir = await freshDir('disagree');
    await writeIdx(join(dir, 't10k-images-idx3-ubyte.gz'), [2, 28, 28], new Uint8Array(2 * 784), { gzip: true });
    await writeIdx(join(dir, 't10k-labels-idx1-ubyte.gz'), [3], new Uint8Array([0, 1, 2]), { gzip: true });
    const err = await rejection(loadFashionMnist('test', { dataDir: dir }));
    expect(err.message).toMatch(/2 images but .*t10k-labels-idx1-ubyte\.gz has 3 labels/);
  });
});

describe('Fashion-MNIST download', () => {
  let server: Server;
  let mirror: string;
  const served = new Map<string, Buffer>();
  const requests: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const body = served.get(req.url ?? '');
      if (!body) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const encoded = req.url?.startsWith('/enc/');
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': body.length,
        ...(encoded ? { 'content-encoding': 'gzip' } : {}),
      });
      // two chunks, so progress is reported more than once
      res.write(body.subarray(0, body.length >> 1));
      setTimeout(() => res.end(body.subarray(body.length >> 1)), 5);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fm/`;
    const { images, labels } = fakeSplit(6, 9);
    served.set('/fm/train-images-idx3-ubyte.gz', gzipSync(encodeIdx([6, 28, 28], images)));
    served.set('/fm/train-labels-idx1-ubyte.gz', gzipSync(encodeIdx([6], labels)));
    served.set('/enc/train-images-idx3-ubyte.gz', served.get('/fm/train-images-idx3-ubyte.gz')!);
    served.set('/enc/train-labels-idx1-ubyte.gz', served.get('/fm/train-labels-idx1-ubyte.gz')!);
  });
  afterAll(async () => {
    await new Promise((ok) => server.close(ok));
  });

  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');
  function goodChecksums(): Record<string, FileChecksum> {
    return {
      'train-images-idx3-ubyte.gz': { sha256: [sha(served.get('/fm/train-images-idx3-ubyte.gz')!)] },
      'train-labels-idx1-ubyte.gz': { md5: [md5(served.get('/fm/train-labels-idx1-ubyte.gz')!)] },
    };
  }

  it('rejects a checksum mismatch and leaves nothing in the cache', async () => {
    const checksums = { ...goodChecksums(), 'train-images-idx3-ubyte.gz': { md5: ['0'.repeat(32)] } };
    const err = await rejection(
      loadFashionMnist('train', { mirror, checksums, systemDir: null, onProgress: () => {} }),
    );
    expect(err.message).toContain('checksum mismatch');
    expect(err.message).toContain(`${mirror}train-images-idx3-ubyte.gz`);
    expect(err.message).toContain('0'.repeat(32));
    expect(err.message).toContain(fashionMnistCacheDir()); // still lists the places tried
    expect(err.fix).toContain('CTTA_FASHION_MNIST_MIRROR');
    const cache = fashionMnistCacheDir();
    const left = existsSync(cache) ? await readdir(cache) : [];
    expect(left).toEqual([]);
  });

  it('downloads into the user cache when the checksums match, then reads from the cache', async () => {
    vi.stubEnv('CTTA_FASHION_MNIST_MIRROR', mirror.slice(0, -1)); // base without the trailing slash
    const progress: DownloadProgress[] = [];
    const ds = await loadFashionMnist('train', {
      checksums: goodChecksums(),
      systemDir: null,
      onProgress: (p) => progress.push({ ...p }),
    });
    const cache = fashionMnistCacheDir();
    expect(ds.n).toBe(6);
    expect(ds.source).toBe(cache);
    expect(ds.images).toEqual(fakeSplit(6, 9).images);
    expect((await readdir(cache)).sort()).toEqual(['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']);
    const img = served.get('/fm/train-images-idx3-ubyte.gz')!;
    expect(await readFile(join(cache, 'train-images-idx3-ubyte.gz'))).toEqual(img);
    const last = progress.filter((p) => p.file === 'train-images-idx3-ubyte.gz').at(-1)!;
    expect(last).toMatchObject({ receivedBytes: img.length, totalBytes: img.length });
    expect(last.url).toBe(`${mirror}train-images-idx3-ubyte.gz`);

    requests.length = 0;
    const again = await loadFashionMnist('train', { systemDir: null, allowDownload: false });
    expect(again.n).toBe(6);
    expect(locateFashionMnist('train', { systemDir: null }).found?.kind).toBe('cache');
    expect(requests).toEqual([]);
  });

  it('accepts a re-compressed file by the checksum of its content', async () => {
    const { images, labels } = fakeSplit(6, 9);
    const checksums: Record<string, FileChecksum> = {
      'train-images-idx3-ubyte.gz': { md5: ['f'.repeat(32)], contentSha256: sha(encodeIdx([6, 28, 28], images)) },
      'train-labels-idx1-ubyte.gz': { contentSha256: sha(encodeIdx([6], labels)) },
    };
    const ds = await loadFashionMnist('train', { mirror, checksums, systemDir: null, onProgress: () => {} });
    expect(ds.n).toBe(6);
  });

  it('copes with a server that sends the .gz with Content-Encoding: gzip', async () => {
    const { images, labels } = fakeSplit(6, 9);
    const checksums: Record<string, FileChecksum> = {
      'train-images-idx3-ubyte.gz': { contentSha256: sha(encodeIdx([6, 28, 28], images)) },
      'train-labels-idx1-ubyte.gz': { contentSha256: sha(encodeIdx([6], labels)) },
    };
    const ds = await loadFashionMnist('train', {
      mirror: mirror.replace('/fm/', '/enc/'),
      checksums,
      systemDir: null,
      onProgress: () => {},
    });
    expect(ds.n).toBe(6);
    expect([...ds.labels]).toEqual([...labels]);
  });

  it('reports an HTTP error with the places tried', async () => {
    const err = await rejection(
      loadFashionMnist('train', {
        mirror: mirror.replace('/fm/', '/missing/'),
        checksums: goodChecksums(),
        systemDir: null,
        onProgress: () => {},
      }),
    );
    expect(err.message).toContain('HTTP 404');
    expect(err.message).toContain(shippedFashionMnistDir());
    expect(err.fix).toContain('apt-get install -y dataset-fashion-mnist');
    expect(await readdir(fashionMnistCacheDir())).toEqual([]);
  });

  it('reports an unreachable mirror', async () => {
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((ok) => closed.close(ok));
    const err = await rejection(
      loadFashionMnist('train', {
        mirror: `http://127.0.0.1:${port}/`,
        checksums: goodChecksums(),
        systemDir: null,
        onProgress: () => {},
      }),
    );
    expect(err.message).toMatch(/failed: .*ECONNREFUSED/);
    expect(err.fix).toContain('network');
  });
});

describe('loadDataset', () => {
  it('dispatches by name and lists the known names for an unknown one', async () => {
    expect(datasetNames()).toContain('fashion-mnist');
    const dir = await freshDir('registry');
    await writeFakeSplit(dir, 'test', 2);
    const ds = await loadDataset('fashion-mnist', 'test', { dataDir: dir });
    expect([ds.name, ds.split, ds.n]).toEqual(['fashion-mnist', 'test', 2]);
    const err = await rejection(loadDataset('fashion-mnsit', 'test'));
    expect(err.message).toContain('fashion-mnsit');
    expect(err.message).toContain('fashion-mnist');
    expect(basename(dir)).toMatch(/^registry/);
  });
});

describe('registerDataset', () => {
  const tiny = (name: string, n: number): ImageDataset => ({
    name,
    split: 'test',
    images: new Uint8Array(n * 4).fill(7),
    labels: Int32Array.from({ length: n }, (_, i) => i % 2),
    n,
    height: 2,
    width: 2,
    channels: 1,
    classNames: ['a', 'b'],
    source: '(memory)',
  });

  it('takes a name and a loader, or a definition with its defaults row', async () => {
    registerDataset('two-arg', async (split) => ({ ...tiny('two-arg', 3), split }));
    registerDataset({ name: 'declared', load: async () => tiny('declared', 5), defaults: 'cifar100', description: 'five images' });
    expect(datasetNames()).toEqual(['cifar10', 'cifar100', 'declared', 'fashion-mnist', 'image-folder', 'two-arg']);
    expect((await loadDataset('two-arg', 'train')).split).toBe('train');
    expect((await loadDataset('declared', 'test')).n).toBe(5);
    expect(listDatasets().find((d) => d.name === 'declared')).toMatchObject({ defaults: 'cifar100', description: 'five images' });
    // The defaults row: the shipped datasets and their -C files, then the declared one ('cifar10' if none).
    const rows = ['fashion-mnist', 'cifar10', 'cifar10-c', 'cifar100', 'cifar100-c', 'imagenet-c', 'declared', 'two-arg'].map(datasetDefaultsKey);
    expect(rows).toEqual(['fashion-mnist', 'cifar10', 'cifar10', 'cifar100', 'cifar100', 'imagenet', 'cifar100', 'cifar10']);
    const err = (() => {
      try {
        datasetDefaultsKey('nope');
      } catch (e) {
        return e as CttaError;
      }
    })();
    expect(err?.toLine()).toMatch(/unknown dataset "nope".*use one of: fashion-mnist, cifar10, cifar100, image-folder, two-arg, declared/);
  });

  it('keeps the pre-corrupted names for their readers and checks the loader', async () => {
    expect(() => registerDataset('cifar10-c', async () => tiny('x', 1))).toThrow(/dataset name "cifar10-c" is reserved/);
    expect(() => registerDataset('Bad Name', async () => tiny('x', 1))).toThrow(/not valid/);
    expect(() => registerDataset({ name: 'no-loader' } as never)).toThrow(/no loader/);
  });

  it('loads CIFAR through the registry, from --data-dir only', async () => {
    const err = await rejection(loadDataset('cifar10', 'test'));
    expect(err.toLine()).toMatch(/cifar10 .*cannot download.*--data-dir/);
    const dir = await freshDir('cifar');
    // Two CIFAR-10 records: label byte + 3072 pixel bytes each.
    const records = new Uint8Array(2 * 3073);
    records[0] = 3;
    records[3073] = 8;
    records.fill(200, 1, 3073);
    await writeFile(join(dir, 'test_batch.bin'), records);
    const ds = await loadDataset('cifar10', 'test', { dataDir: dir });
    expect([ds.name, ds.n, ds.height, ds.channels, Array.from(ds.labels)]).toEqual(['cifar10', 2, 32, 3, [3, 8]]);
  });
});
