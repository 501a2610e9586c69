/**
 * CIFAR-10 / CIFAR-100 "binary version" (https://www.cs.toronto.edu/~kriz/cifar.html).
 *
 *   cifar-10-batches-bin/  data_batch_1.bin .. data_batch_5.bin, test_batch.bin, batches.meta.txt
 *                          records of 1 label byte + 3072 pixel bytes
 *   cifar-100-binary/      train.bin, test.bin, coarse_label_names.txt, fine_label_names.txt
 *                          records of 1 coarse label byte + 1 fine label byte + 3072 pixel bytes
 *
 * The 3072 pixel bytes are channel-planar (1024 red, then green, then blue; rows top to bottom);
 * they are reordered to the NHWC layout of ImageDataset.
 *
 * The folder given may hold the files directly or in the standard subfolder. The first of the
 * two that holds any file of the requested split must hold all of them (a folder with
 * data_batch_2..5.bin but no data_batch_1.bin is an error, not a reason to read the subfolder's
 * copy), and every file of the split is checked before any is read, even past `limit`: a whole
 * number of records, and the train batches all of one size.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';

import { CttaError } from '../../../errors.js';
import type { DatasetSplit, ImageDataset } from '../types.js';

export const CIFAR10_CLASSES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];

/** CIFAR-100 fine labels, in label order (alphabetical). */
export const CIFAR100_FINE_CLASSES: readonly string[] = [
  'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle',
  'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle',
  'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
  'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard',
  'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
  'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
  'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
  'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake', 'spider',
  'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor',
  'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm',
];

/** CIFAR-100 coarse labels (superclasses), in label order. */
export const CIFAR100_COARSE_CLASSES: readonly string[] = [
  'aquatic_mammals', 'fish', 'flowers', 'food_containers', 'fruit_and_vegetables',
  'household_electrical_devices', 'household_furniture', 'insects', 'large_carnivores',
  'large_man-made_outdoor_things', 'large_natural_outdoor_scenes', 'large_omnivores_and_herbivores',
  'medium_mammals', 'non-insect_invertebrates', 'people', 'reptiles', 'small_mammals', 'trees',
  'vehicles_1', 'vehicles_2',
];

export const CIFAR_SIDE = 32;
export const CIFAR_PIXELS = CIFAR_SIDE * CIFAR_SIDE;
const IMAGE_BYTES = 3 * CIFAR_PIXELS;

export type CifarVariant = 'cifar10' | 'cifar100';

export interface CifarBinaryOptions {
  split: DatasetSplit;
  /** Default: detected from the files present. */
  variant?: CifarVariant;
  /** CIFAR-100 only: which label to return (default "fine"). */
  label?: 'fine' | 'coarse';
  /** Read only the first `limit` images of the split. */
  limit?: number;
}

const LAYOUT =
  'cifar-10-batches-bin/{data_batch_1..5.bin, test_batch.bin, batches.meta.txt} or ' +
  'cifar-100-binary/{train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt}';

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Size in bytes of a regular file, or undefined when there is none. */
async function fileSize(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

const SUBFOLDER: Record<CifarVariant, string> = { cifar10: 'cifar-10-batches-bin', cifar100: 'cifar-100-binary' };

/** The batch files of a split, in reading order. */
function splitFiles(variant: CifarVariant, split: DatasetSplit): string[] {
  if (variant === 'cifar100') return [split === 'train' ? 'train.bin' : 'test.bin'];
  return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
}

interface Located {
  dir: string;
  variant: CifarVariant;
  /** The split's files, with their sizes (all present). */
  files: { file: string; size: number }[];
}

/**
 * The folder holding the split's batches: `dir` itself or its standard subfolder, whichever comes
 * first holding any file of the split; that folder must hold all of them.
 */
async function locate(dir: string, variant: CifarVariant | undefined, split: DatasetSplit): Promise<Located> {
  if (!(await exists(dir))) {
    throw new CttaError(`CIFAR folder ${dir} does not exist`, { fix: `point at a folder laid out as ${LAYOUT}` });
  }
  const order: [CifarVariant, string][] = [
    ['cifar10', dir],
    ['cifar100', dir],
    ['cifar10', join(dir, SUBFOLDER.cifar10)],
    ['cifar100', join(dir, SUBFOLDER.cifar100)],
  ];
  const sizes = async (v: CifarVariant, folder: string, s: DatasetSplit) =>
    Promise.all(splitFiles(v, s).map(async (name) => ({ name, file: join(folder, name), size: await fileSize(join(folder, name)) })));
  // Which dataset: the caller's, else the first one with any batch file (either split) on disk.
  let chosen = variant;
  if (chosen === undefined) {
    for (const [v, folder] of order) {
      const any = [...(await sizes(v, folder, 'train')), ...(await sizes(v, folder, 'test'))];
      if (any.some((f) => f.size !== undefined)) {
        chosen = v;
        break;
      }
    }
  }
  if (chosen === undefined) {
    throw new CttaError(`${dir} holds no CIFAR-10 or CIFAR-100 binary batches`, {
      fix: `expected ${LAYOUT} (the "binary version" from https://www.cs.toronto.edu/~kriz/cifar.html)`,
    });
  }
  for (const [v, folder] of order) {
    if (v !== chosen) continue;
    const files = await sizes(v, folder, split);
    const present = files.filter((f) => f.size !== undefined);
    if (present.length === 0) continue;
    const missing = files.filter((f) => f.size === undefined);
    if (missing.length > 0) {
      throw new CttaError(
        `${dir} holds ${present.map((f) => relative(dir, f.file)).join(', ')} but not ` +
          `${missing.map((f) => f.name).join(', ')} of the ${v} ${split} split`,
        { fix: `add ${missing.map((f) => f.name).join(', ')} to ${folder} (from the same download), or point --data-dir at a folder holding the whole split` },
      );
    }
    return { dir: folder, variant: v, files: files.map((f) => ({ file: f.file, size: f.size! })) };
  }
  const names = splitFiles(chosen, split);
  throw new CttaError(
    `${dir} holds no ${chosen} binary batches of the ${split} split (${names.join(', ')}), neither directly nor in ${SUBFOLDER[chosen]}/`,
    { fix: `expected ${LAYOUT} (the "binary version" from https://www.cs.toronto.edu/~kriz/cifar.html)` },
  );
}

/**
 * Every file of the split must be a whole number of records, and the batches of a split (CIFAR-10
 * train: data_batch_1..5) all of one size: a short or foreign batch is found before any is read.
 */
function checkSizes(files: readonly { file: string; size: number }[], labelBytes: 1 | 2): void {
  const recordSize = labelBytes + IMAGE_BYTES;
  for (const { file, size } of files) recordCount(file, size, labelBytes);
  const [first, ...rest] = files;
  for (const { file, size } of rest) {
    if (size !== first!.size) {
      throw new CttaError(
        `${file}: ${size / recordSize} records (${size} bytes), expected ${first!.size / recordSize} records ` +
          `(${first!.size} bytes) like ${basename(first!.file)}`,
        { fix: 'the file is truncated or from another copy; download the binary version again' },
      );
    }
  }
}

/** Class names from a meta file (one per line), or the built-in list when the file is absent. */
async function classNamesFrom(file: string, builtin: readonly string[]): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [...builtin];
  }
  const names = text
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length !== builtin.length) {
    throw new CttaError(`${file}: found ${names.length} class names, expected ${builtin.length} (one per line)`, {
      fix: 'restore the file from the original archive, or delete it to use the standard names',
    });
  }
  return names;
}

/** Number of records in a batch file of `size` bytes; throws unless it is a whole number of records. */
function recordCount(file: string, size: number, labelBytes: 1 | 2): number {
  const recordSize = labelBytes + IMAGE_BYTES;
  if (size % recordSize !== 0 || size === 0) {
    throw new CttaError(
      `${file}: size ${size} bytes is not a whole number of ${recordSize}-byte records ` +
        `(${labelBytes} label byte${labelBytes > 1 ? 's' : ''} + 3072 pixels)`,
      { fix: 'the file is truncated or from another dataset; download it again' },
    );
  }
  return size / recordSize;
}

/**
 * Decode whole records of one batch file into `images` / `labels` starting at image `at`;
 * returns how many images were taken (at most `max`).
 */
function decodeBatch(
  file: string,
  buf: Uint8Array,
  labelBytes: 1 | 2,
  labelIndex: 0 | 1,
  numClasses: number,
  images: Uint8Array,
  labels: Int32Array,
  at: number,
  max: number,
): number {
  const recordSize = labelBytes + IMAGE_BYTES;
  const count = Math.min(buf.length / recordSize, max);
  for (let r = 0; r < count; r++) {
    const base = r * recordSize;
    const y = buf[base + labelIndex]!;
    if (y >= numClasses) {
      throw new CttaError(`${file}: record ${r} has label ${y}, expected 0..${numClasses - 1}`, {
        fix: 'the file is damaged or from another dataset',
      });
    }
    labels[at + r] = y;
    const px = base + labelBytes;
    const out = (at + r) * IMAGE_BYTES;
    for (let p = 0; p < CIFAR_PIXELS; p++) {
      images[out + p * 3] = buf[px + p]!;
      images[out + p * 3 + 1] = buf[px + CIFAR_PIXELS + p]!;
      images[out + p * 3 + 2] = buf[px + 2 * CIFAR_PIXELS + p]!;
    }
  }
  return count;
}

/** Read a split of CIFAR-10 or CIFAR-100 from its binary batches. */
export async function readCifarBinary(dir: string, options: CifarBinaryOptions): Promise<ImageDataset> {
  const { split, limit } = options;
  if (split !== 'train' && split !== 'test') {
    throw new CttaError(`CIFAR split "${String(split)}" is not "train" or "test"`);
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new CttaError(`CIFAR option limit must be a positive integer (got ${String(limit)})`);
  }
  const found = await locate(dir, options.variant, split);
  const cifar10 = found.variant === 'cifar10';
  if (cifar10 && options.label !== undefined) {
    throw new CttaError('CIFAR option label ("fine" / "coarse") applies to CIFAR-100 only');
  }
  const coarse = options.label === 'coarse';
  checkSizes(found.files, cifar10 ? 1 : 2);
  const classNames = cifar10
    ? await classNamesFrom(join(found.dir, 'batches.meta.txt'), CIFAR10_CLASSES)
    : coarse
      ? await classNamesFrom(join(found.dir, 'coarse_label_names.txt'), CIFAR100_COARSE_CLASSES)
      : await classNamesFrom(join(found.dir, 'fine_label_names.txt'), CIFAR100_FINE_CLASSES);

  const buffers: { file: string; buf: Uint8Array }[] = [];
  let total = 0;
  for (const { file, size } of found.files) {
    if (limit !== undefined && total >= limit) break;
    let buf: Uint8Array;
    try {
      buf = await readFile(file);
    } catch (e) {
      throw new CttaError(`${file}: missing or unreadable (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
        fix: `expected ${LAYOUT}`,
        cause: e,
      });
    }
    if (buf.length !== size) {
      throw new CttaError(`${file}: changed while being read (${size} bytes, then ${buf.length})`, {
        fix: 'wait until the copy or download has finished, then run again',
      });
    }
    total += recordCount(file, buf.length, cifar10 ? 1 : 2);
    buffers.push({ file, buf });
  }
  const n = limit === undefined ? total : Math.min(limit, total);
  const images = new Uint8Array(n * IMAGE_BYTES);
  const labels = new Int32Array(n);
  let at = 0;
  for (const { file, buf } of buffers) {
    if (at >= n) break;
    at += decodeBatch(file, buf, cifar10 ? 1 : 2, cifar10 || coarse ? 0 : 1, classNames.length, images, labels, at, n - at);
  }
  return {
    name: cifar10 ? 'cifar10' : 'cifar100',
    split,
    images,
    labels,
    n,
    height: CIFAR_SIDE,
    width: CIFAR_SIDE,
    channels: 3,
    classNames,
    source: found.dir,
  };
}
