import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CttaError } from '../src/errors.js';
import {
  CIFAR100_COARSE_CLASSES,
  CIFAR100_FINE_CLASSES,
  CIFAR10_CLASSES,
  encodeNpy,
  indexImageFolder,
  indexImageNetC,
  listCifarCCorruptions,
  listImageNetC,
  materialize,
  parseNpyHeader,
  readCifarBinary,
  readCifarC,
  readNpyHeader,
  readNpyLabels,
  readNpyRows,
  readNpyUint8,
  writeNpy,
} from '../src/streams/datasets/readers/index.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ctta-readers-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function expectCttaError(promise: Promise<unknown>, ...fragments: string[]): Promise<CttaError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(CttaError);
  const err = caught as CttaError;
  for (const f of fragments) expect(err.toLine()).toContain(f);
  return err;
}

// ------------------------------------------------------------------------------------------------
describe('npy', () => {
  it('parses the header numpy writes (v1, v2, v3) and round-trips data', async () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    for (const version of [1, 2, 3] as const) {
      const bytes = encodeNpy(data, [2, 3, 4], { version });
      const h = parseNpyHeader(bytes);
      expect(h).toMatchObject({ version: `${version}.0`, descr: '|u1', dtype: 'uint8', shape: [2, 3, 4], fortranOrder: false });
      expect(h.dataOffset % 64).toBe(0);
      const file = join(root, `v${version}.npy`);
      await writeFile(file, bytes);
      expect((await readNpyUint8(file)).data).toEqual(data);
      expect(await readNpyRows(file, h, 1, 1)).toEqual(data.subarray(12, 24));
    }
  });

  it('parses a hand-written header with the quirks of older numpy', () => {
    const text = "{'descr': '<i8', 'fortran_order': False, 'shape': (3L,), }";
    const header = text.padEnd(128 - 10 - 1, ' ') + '\n';
    const bytes = new Uint8Array(10 + header.length + 24);
    bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    new DataView(bytes.buffer).setUint16(8, header.length, true);
    bytes.set(new TextEncoder().encode(header), 10);
    expect(parseNpyHeader(bytes)).toMatchObject({ dtype: 'int64', shape: [3], dataOffset: 128 });
  });

  it('reads integer labels of any width into Int32Array', async () => {
    const values = [0, 9, 3, 7];
    const cases = [
      ['u1', Uint8Array.from(values)],
      ['i4', Int32Array.from(values)],
      ['i8', BigInt64Array.from(values.map(BigInt))],
    ] as const;
    for (const [name, arr] of cases) {
      const file = join(root, `labels-${name}.npy`);
      await writeNpy(file, arr, [values.length]);
      expect(Array.from(await readNpyLabels(file))).toEqual(values);
    }
  });

  it('rejects fortran order, wrong dtypes, truncation and non-npy files, naming the file', async () => {
    const bytes = encodeNpy(new Uint8Array(6), [2, 3]);
    const text = Buffer.from(bytes).toString('latin1');
    const fortran = join(root, 'fortran.npy');
    await writeFile(fortran, Buffer.from(text.replace("'fortran_order': False", "'fortran_order': True "), 'latin1'));
    await expectCttaError(readNpyUint8(fortran), 'fortran.npy', 'Fortran');

    const floats = join(root, 'floats.npy');
    await writeNpy(floats, new Float32Array(6), [2, 3]);
    await expectCttaError(readNpyUint8(floats, { shape: [2, 3] }), 'floats.npy', 'float32 [2, 3]', 'expected uint8 [2, 3]');
    await expectCttaError(readNpyLabels(floats), 'floats.npy', 'float32');

    const truncated = join(root, 'truncated.npy');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 2));
    await expectCttaError(readNpyHeader(truncated), 'truncated.npy', 'truncated');

    const junk = join(root, 'junk.npy');
    await writeFile(junk, 'hello world, not numpy');
    await expectCttaError(readNpyHeader(junk), 'junk.npy', 'not a NumPy');
    await expectCttaError(readNpyHeader(join(root, 'absent.npy')), 'absent.npy', 'ENOENT');
  });
});

// ------------------------------------------------------------------------------------------------
/** A CIFAR record: label bytes then CHW planes with recognisable values. */
function cifarRecord(labelBytes: number[], seed: number): Uint8Array {
  const rec = new Uint8Array(labelBytes.length + 3072);
  rec.set(labelBytes);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < 1024; p++) rec[labelBytes.length + c * 1024 + p] = (seed * 31 + c * 80 + p) % 256;
  }
  return rec;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** NHWC pixel (image i, pixel p, channel c) must equal the planar source value. */
function expectPixel(images: Uint8Array, i: number, p: number, c: number, seed: number): void {
  expect(images[(i * 1024 + p) * 3 + c]).toBe((seed * 31 + c * 80 + p) % 256);
}

describe('CIFAR binary batches', () => {
  let cifar10: string;
  let cifar100: string;

  beforeAll(async () => {
    cifar10 = join(root, 'c10', 'cifar-10-batches-bin');
    await mkdir(cifar10, { recursive: true });
    for (let b = 1; b <= 5; b++) {
      const recs = [0, 1, 2].map((r) => cifarRecord([(b + r) % 10], b * 10 + r));
      await writeFile(join(cifar10, `data_batch_${b}.bin`), concat(recs));
    }
    await writeFile(join(cifar10, 'test_batch.bin'), concat([7, 8, 9, 3].map((y, r) => cifarRecord([y], 100 + r))));
    await writeFile(join(cifar10, 'batches.meta.txt'), CIFAR10_CLASSES.map((c) => c.toUpperCase()).join('\n') + '\n\n');

    cifar100 = join(root, 'cifar-100-binary');
    await mkdir(cifar100, { recursive: true });
    await writeFile(join(cifar100, 'train.bin'), concat([cifarRecord([4, 99], 1), cifarRecord([19, 0], 2)]));
    await writeFile(join(cifar100, 'test.bin'), concat([cifarRecord([0, 42], 3)]));
  });

  it('reads CIFAR-10 train and test into NHWC with labels and class names', async () => {
    const train = await readCifarBinary(cifar10, { split: 'train' });
    expect(train).toMatchObject({ name: 'cifar10', split: 'train', n: 15, height: 32, width: 32, channels: 3 });
    expect(train.images.length).toBe(15 * 3072);
    expect(Array.from(train.labels.subarray(0, 6))).toEqual([1, 2, 3, 2, 3, 4]);
    expect(train.classNames[0]).toBe('AIRPLANE');
    // image 4 = batch 2, record 1 (seed 21)
    for (const [p, c] of [[0, 0], [1, 1], [33, 2], [1023, 0]] as const) expectPixel(train.images, 4, p, c, 21);

    const test = await readCifarBinary(join(root, 'c10'), { split: 'test', limit: 2 });
    expect(test.n).toBe(2);
    expect(Array.from(test.labels)).toEqual([7, 8]);
    expectPixel(test.images, 1, 500, 2, 101);
  });

  it('stops reading batches once the limit is reached', async () => {
    const part = await readCifarBinary(cifar10, { split: 'train', limit: 4 });
    expect(part.n).toBe(4);
    expectPixel(part.images, 3, 10, 1, 20);
  });

  it('reads CIFAR-100 fine and coarse labels with the standard names', async () => {
    const fine = await readCifarBinary(cifar100, { split: 'train' });
    expect(fine.name).toBe('cifar100');
    expect(Array.from(fine.labels)).toEqual([99, 0]);
    expect(fine.classNames).toHaveLength(100);
    expect([...CIFAR100_FINE_CLASSES].sort()).toEqual([...CIFAR100_FINE_CLASSES]);
    expect(fine.classNames[99]).toBe('worm');
    expectPixel(fine.images, 1, 77, 1, 2);
    const coarse = await readCifarBinary(cifar100, { split: 'train', label: 'coarse' });
    expect(Array.from(coarse.labels)).toEqual([4, 19]);
    expect(coarse.classNames).toEqual([...CIFAR100_COARSE_CLASSES]);
    expect((await readCifarBinary(cifar100, { split: 'test' })).labels[0]).toBe(42);
  });

  it('names the file and the problem when batches are missing or damaged', async () => {
    const broken = join(root, 'broken10');
    await mkdir(broken, { recursive: true });
    await writeFile(join(broken, 'data_batch_1.bin'), cifarRecord([1], 0));
    await writeFile(join(broken, 'test_batch.bin'), cifarRecord([1], 0).subarray(0, 3000));
    await expectCttaError(readCifarBinary(broken, { split: 'train' }), 'data_batch_2.bin');
    await expectCttaError(readCifarBinary(broken, { split: 'test' }), 'test_batch.bin', '3073-byte records');
    await writeFile(join(broken, 'test_batch.bin'), cifarRecord([12], 0));
    await expectCttaError(readCifarBinary(broken, { split: 'test' }), 'test_batch.bin', 'label 12');
    await expectCttaError(readCifarBinary(join(root, 'nowhere'), { split: 'test' }), 'nowhere', 'cifar-10-batches-bin');
    await expectCttaError(readCifarBinary(root, { split: 'test', variant: 'cifar10' }), root);
  });
});

// ------------------------------------------------------------------------------------------------
describe('CIFAR-10-C / CIFAR-100-C', () => {
  let dir: string;
  const perSeverity = 4;
  /** pixel value for (severity, image, byte) so slices are recognisable */
  const value = (s: number, i: number, b: number): number => (s * 50 + i * 7 + b) % 256;

  beforeAll(async () => {
    dir = join(root, 'CIFAR-10-C');
    await mkdir(dir, { recursive: true });
    const rows = 5 * perSeverity;
    const images = new Uint8Array(rows * 3072);
    for (let r = 0; r < rows; r++) {
      const s = Math.floor(r / perSeverity) + 1;
      for (let b = 0; b < 3072; b++) images[r * 3072 + b] = value(s, r % perSeverity, b);
    }
    await writeNpy(join(dir, 'gaussian_noise.npy'), images, [rows, 32, 32, 3]);
    await writeNpy(join(dir, 'fog.npy'), images, [rows, 32, 32, 3]);
    const labels = BigInt64Array.from({ length: rows }, (_, r) => BigInt((r % perSeverity) * 2));
    await writeNpy(join(dir, 'labels.npy'), labels, [rows]);
  });

  it('reads one (corruption, severity) slice with its labels', async () => {
    const ds = await readCifarC(root, { corruption: 'gaussian_noise', severity: 3 });
    expect(ds).toMatchObject({ name: 'cifar10-c', split: 'test', n: 4, height: 32, width: 32, channels: 3 });
    expect(ds.classNames).toEqual([...CIFAR10_CLASSES]);
    expect(Array.from(ds.labels)).toEqual([0, 2, 4, 6]);
    for (const [i, b] of [[0, 0], [2, 100], [3, 3071]] as const) expect(ds.images[i * 3072 + b]).toBe(value(3, i, b));
    const two = await readCifarC(dir, { corruption: 'fog', severity: 5, limit: 2 });
    expect(two.n).toBe(2);
    expect(two.images[3072 + 5]).toBe(value(5, 1, 5));
    expect(await listCifarCCorruptions(dir)).toEqual(['fog', 'gaussian_noise']);
  });

  it('reads the slice by byte range from a full-size 50000-image file', async () => {
    const big = join(root, 'big', 'CIFAR-100-C');
    await mkdir(big, { recursive: true });
    const file = join(big, 'snow.npy');
    const header = encodeNpy(new Uint8Array(0), [0, 32, 32, 3]);
    // Same header length: the 4 extra digits replace 4 padding spaces.
    const text = Buffer.from(header).toString('latin1').replace('(0, 32, 32, 3), }    ', '(50000, 32, 32, 3), }');
    const headBytes = Buffer.from(text, 'latin1');
    const fh = await open(file, 'w');
    // Sparse file: 150 MB on paper, only the written pages on disk.
    await fh.truncate(headBytes.length + 50000 * 3072);
    await fh.write(headBytes, 0, headBytes.length, 0);
    const marker = Uint8Array.from({ length: 3072 }, (_, b) => (b * 3 + 1) % 256);
    await fh.write(marker, 0, 3072, headBytes.length + 40000 * 3072); // first image of severity 5
    await fh.close();
    const labels = Int32Array.from({ length: 10000 }, (_, i) => i % 100);
    await writeNpy(join(big, 'labels.npy'), labels, [10000]); // one block of labels is accepted too
    const ds = await readCifarC(join(root, 'big'), { corruption: 'snow', severity: 5, limit: 3 });
    expect(ds.name).toBe('cifar100-c');
    expect(ds.classNames).toHaveLength(100);
    expect(ds.images.subarray(0, 3072)).toEqual(marker);
    expect(ds.images.subarray(3072).every((v) => v === 0)).toBe(true);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2]);
    expect((await readNpyHeader(file)).shape).toEqual([50000, 32, 32, 3]);
  });

  it('reports wrong shapes and dtypes with the file, the shape found and the one expected', async () => {
    const bad = join(root, 'bad-c');
    await mkdir(bad, { recursive: true });
    await writeNpy(join(bad, 'labels.npy'), new Int32Array(20), [20]);
    await writeNpy(join(bad, 'frost.npy'), new Uint8Array(20 * 32 * 32), [20, 32, 32]);
    await expectCttaError(
      readCifarC(bad, { corruption: 'frost', severity: 1 }),
      'frost.npy',
      'found uint8 [20, 32, 32]',
      'expected uint8 [5 * n, H, W, 3]',
      '[50000, 32, 32, 3]',
    );
    await writeNpy(join(bad, 'fog.npy'), new Float32Array(5 * 3072), [5, 32, 32, 3]);
    await expectCttaError(readCifarC(bad, { corruption: 'fog', severity: 1 }), 'fog.npy', 'found float32 [5, 32, 32, 3]');
    await writeNpy(join(bad, 'snow.npy'), new Uint8Array(10 * 3072), [10, 32, 32, 3]);
    await expectCttaError(readCifarC(bad, { corruption: 'snow', severity: 2 }), 'labels.npy', '[20]', 'expected integer [10]');
    await expectCttaError(readCifarC(bad, { corruption: 'zoom_blur', severity: 2 }), 'zoom_blur.npy', 'available corruptions: fog, frost, snow');
    await expectCttaError(readCifarC(dir, { corruption: 'fog', severity: 6 }), 'severity', '1..5');
    await expectCttaError(readCifarC(join(root, 'missing-c'), { corruption: 'fog', severity: 1 }), 'missing-c', 'labels.npy');
  });
});

// ------------------------------------------------------------------------------------------------
/** Solid-colour image file of the given size. */
async function solid(file: string, width: number, height: number, rgb: [number, number, number]): Promise<void> {
  await sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).toFile(file);
}

describe('image folders', () => {
  let generic: string;
  let imagenetC: string;

  beforeAll(async () => {
    generic = join(root, 'folder');
    for (const cls of ['dog', 'cat', 'ant']) await mkdir(join(generic, cls), { recursive: true });
    await solid(join(generic, 'cat', 'b.png'), 40, 30, [200, 10, 10]);
    await solid(join(generic, 'cat', 'a.jpg'), 20, 50, [10, 200, 10]);
    await mkdir(join(generic, 'cat', 'more'), { recursive: true });
    await solid(join(generic, 'cat', 'more', 'c.JPEG'), 64, 64, [10, 10, 200]);
    await solid(join(generic, 'dog', 'x.png'), 30, 30, [255, 255, 255]);
    await writeFile(join(generic, 'dog', 'notes.txt'), 'not an image');
    // Left half black, right half white, 40 x 20: tells a centre crop from a squash.
    const halves = new Uint8Array(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 20; x < 40; x++) halves.fill(255, (y * 40 + x) * 3, (y * 40 + x) * 3 + 3);
    await sharp(halves, { raw: { width: 40, height: 20, channels: 3 } }).png().toFile(join(generic, 'ant', 'halves.png'));
    // A grey PNG and a broken "JPEG": indexing must not decode them.
    await sharp(new Uint8Array(16 * 16).fill(90), { raw: { width: 16, height: 16, channels: 1 } }).png().toFile(join(generic, 'ant', 'grey.png'));
    await writeFile(join(generic, 'ant', 'zz-broken.jpg'), 'definitely not a jpeg');

    imagenetC = join(root, 'imagenet-c');
    for (const [corruption, severity, wnid, n] of [
      ['gaussian_noise', 3, 'n01440764', 2],
      ['gaussian_noise', 3, 'n01443537', 1],
      ['gaussian_noise', 5, 'n01440764', 1],
      ['fog', 1, 'n01443537', 1],
    ] as const) {
      const d = join(imagenetC, corruption, String(severity), wnid);
      await mkdir(d, { recursive: true });
      for (let i = 0; i < n; i++) await solid(join(d, `ILSVRC2012_val_0000000${i}.JPEG`), 224, 224, [i * 100, severity * 40, 0]);
    }
  });

  it('indexes class folders sorted, without decoding', async () => {
    const lazy = await indexImageFolder(generic, { size: 8 });
    expect(lazy.classNames).toEqual(['ant', 'cat', 'dog']);
    expect(lazy.files.map((f) => f.slice(generic.length + 1))).toEqual([
      'ant/grey.png',
      'ant/halves.png',
      'ant/zz-broken.jpg',
      'cat/a.jpg',
      'cat/b.png',
      'cat/more/c.JPEG',
      'dog/x.png',
    ]);
    expect(Array.from(lazy.labels)).toEqual([0, 0, 0, 1, 1, 1, 2]);
    expect(lazy).toMatchObject({ n: 7, height: 8, width: 8, channels: 3, name: 'folder', split: 'test' });
    // Only now is the broken file touched.
    await expectCttaError(lazy.readImages([2]), 'zz-broken.jpg', 'cannot decode');
  });

  it('decodes requested images in the requested order, resized directly', async () => {
    const lazy = await indexImageFolder(generic, { size: [6, 10] });
    const px = 6 * 10 * 3;
    const batch = await lazy.readImages([6, 4, 0]);
    expect(batch.length).toBe(3 * px);
    expect(Array.from(batch.subarray(0, 3))).toEqual([255, 255, 255]);
    const red = batch.subarray(px, 2 * px);
    expect(red[0]).toBeGreaterThan(190);
    expect(red[1]).toBeLessThan(20);
    // grey input expanded to three equal channels
    expect(Array.from(batch.subarray(2 * px, 2 * px + 3))).toEqual([90, 90, 90]);
  });

  it('resizes the shorter side then centre-crops (Resize + CenterCrop)', async () => {
    const lazy = await indexImageFolder(generic, { resize: 10, crop: 10 });
    // halves.png 40x20 -> 20x10 -> central 10x10 = resized columns 5..14: left half black, right white
    const img = await lazy.readImages([1]);
    const at = (x: number, y: number): number => img[(y * 10 + x) * 3]!;
    expect(at(0, 5)).toBeLessThan(30);
    expect(at(3, 5)).toBeLessThan(30);
    expect(at(6, 5)).toBeGreaterThan(225);
    expect(at(9, 5)).toBeGreaterThan(225);
    const grey = await indexImageFolder(generic, { resize: 12, crop: 8, channels: 1 });
    expect(grey.channels).toBe(1);
    expect((await grey.readImages([0, 1])).length).toBe(2 * 64);
    const ds = await materialize(grey, [0]);
    expect(ds).toMatchObject({ n: 1, height: 8, width: 8, channels: 1 });
    expect(Array.from(ds.labels)).toEqual([0]);
  });

  it('indexes ImageNet-C by corruption and severity', async () => {
    expect(await listImageNetC(imagenetC)).toEqual([
      { corruption: 'fog', severities: [1] },
      { corruption: 'gaussian_noise', severities: [3, 5] },
    ]);
    const lazy = await indexImageNetC(imagenetC, { corruption: 'gaussian_noise', severity: 3 });
    expect(lazy).toMatchObject({ name: 'imagenet-c', n: 3, height: 224, width: 224, channels: 3 });
    expect(lazy.classNames).toEqual(['n01440764', 'n01443537']);
    expect(Array.from(lazy.labels)).toEqual([0, 0, 1]);
    const img = await lazy.readImages([1]);
    expect(img.length).toBe(224 * 224 * 3);
    expect(Math.abs(img[0]! - 100)).toBeLessThan(4);
    expect(Math.abs(img[1]! - 120)).toBeLessThan(4);
    // labels follow a given full class list, so they match a 1000-way model
    const full = ['n00000001', 'n01440764', 'n01443537', 'n09999999'];
    const fog = await indexImageNetC(imagenetC, { corruption: 'fog', severity: 1, classNames: full, size: 16 });
    expect(Array.from(fog.labels)).toEqual([2]);
    expect(fog.classNames).toEqual(full);
  });

  it('names missing folders and the expected layout', async () => {
    await expectCttaError(indexImageFolder(join(root, 'no-such-folder')), 'no-such-folder', '<root>/<class>/');
    await expectCttaError(
      indexImageNetC(join(root, 'no-imagenet'), { corruption: 'fog', severity: 1 }),
      'no-imagenet',
      '<root>/<corruption>/<severity 1-5>/<wnid>/',
    );
    await expectCttaError(
      indexImageNetC(imagenetC, { corruption: 'snow', severity: 1 }),
      'snow',
      'available corruptions: fog, gaussian_noise',
    );
    await expectCttaError(
      indexImageNetC(imagenetC, { corruption: 'gaussian_noise', severity: 4 }),
      join('gaussian_noise', '4'),
      'available severities of gaussian_noise: 3, 5',
    );
    await expectCttaError(indexImageFolder(generic, { resize: 8, crop: 10 }), 'crop (10)');
    const empty = join(root, 'empty');
    await mkdir(join(empty, 'cls'), { recursive: true });
    await expectCttaError(indexImageFolder(empty), 'no .jpg/.jpeg/.png images');
  });
});
