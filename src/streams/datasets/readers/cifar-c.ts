/**
 * CIFAR-10-C / CIFAR-100-C (Hendrycks & Dietterich, ICLR 2019; zenodo 2535967 / 3555552).
 *
 *   CIFAR-10-C/<corruption>.npy   uint8 [50000, 32, 32, 3]: severities 1..5 stacked, 10000 each,
 *                                 the same 10000 test images in the same order in every block
 *   CIFAR-10-C/labels.npy         [50000] integer labels (the 10000 labels repeated 5 times)
 *
 * One (corruption, severity) is a 10000-row slice: it is read by byte range from the file, never
 * the whole 150 MB. Files of other sizes are accepted if the row count divides by 5 (e.g. small
 * subsets); a labels.npy holding only one block (N / 5 labels) is accepted too.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { CttaError } from '../../../errors.js';
import type { ImageDataset } from '../types.js';
import { CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from './cifar-binary.js';
import { INTEGER_DTYPES, checkNpy, decodeIntegers, formatShape, readNpyHeader, readNpyRows } from './npy.js';

/** The 15 benchmark corruptions, in the order of the CTTA tables (CoTTA, TENT). */
export const CIFAR_C_CORRUPTIONS: readonly string[] = [
  'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur',
  'snow', 'frost', 'fog', 'brightness', 'contrast', 'elastic_transform', 'pixelate', 'jpeg_compression',
];

/** The 4 held-out corruptions shipped alongside (not used in the benchmark tables). */
export const CIFAR_C_EXTRA_CORRUPTIONS: readonly string[] = ['speckle_noise', 'gaussian_blur', 'spatter', 'saturate'];

export const CIFAR_C_SEVERITIES = 5;

export interface CifarCOptions {
  corruption: string;
  /** 1..5. */
  severity: number;
  /** Names the dataset and picks the class names; default: inferred from the labels (>= 10 classes -> cifar100-c). */
  dataset?: 'cifar10-c' | 'cifar100-c';
  /** Only the first `limit` images of the slice (CoTTA / RobustBench take the first n). */
  limit?: number;
}

const LAYOUT = '<dir>/<corruption>.npy (uint8 [50000, 32, 32, 3], severities 1-5 stacked) and <dir>/labels.npy';

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** `dir` itself, or its CIFAR-10-C / CIFAR-100-C subfolder, whichever holds labels.npy. */
async function locate(dir: string, dataset: CifarCOptions['dataset']): Promise<string> {
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new CttaError(`CIFAR-C folder ${dir} does not exist`, { fix: `expected ${LAYOUT}` });
  const subfolders =
    dataset === 'cifar10-c' ? ['CIFAR-10-C'] : dataset === 'cifar100-c' ? ['CIFAR-100-C'] : ['CIFAR-10-C', 'CIFAR-100-C'];
  for (const folder of [dir, ...subfolders.map((s) => join(dir, s))]) {
    if (await isFile(join(folder, 'labels.npy'))) return folder;
  }
  throw new CttaError(`${join(dir, 'labels.npy')} not found: ${dir} is not a CIFAR-10-C / CIFAR-100-C folder`, {
    fix: `expected ${LAYOUT}`,
  });
}

/** Corruptions available in a CIFAR-C folder (every `<name>.npy` but labels.npy), sorted. */
export async function listCifarCCorruptions(dir: string, dataset?: CifarCOptions['dataset']): Promise<string[]> {
  const folder = await locate(dir, dataset);
  const names = await readdir(folder);
  return names
    .filter((f) => f.endsWith('.npy') && f !== 'labels.npy')
    .map((f) => f.slice(0, -4))
    .sort();
}

/** One (corruption, severity) slice of CIFAR-10-C or CIFAR-100-C as an ImageDataset. */
export async function readCifarC(dir: string, options: CifarCOptions): Promise<ImageDataset> {
  const { corruption, severity, limit } = options;
  if (typeof corruption !== 'string' || corruption === '' || /[\\/]/.test(corruption)) {
    throw new CttaError(`CIFAR-C corruption must be a file stem such as "gaussian_noise" (got ${JSON.stringify(corruption)})`);
  }
  if (!Number.isInteger(severity) || severity < 1 || severity > CIFAR_C_SEVERITIES) {
    throw new CttaError(`CIFAR-C severity must be an integer 1..${CIFAR_C_SEVERITIES} (got ${String(severity)})`);
  }
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
    throw new CttaError(`CIFAR-C option limit must be a positive integer (got ${String(limit)})`);
  }
  const folder = await locate(dir, options.dataset);
  const imageFile = join(folder, `${corruption}.npy`);
  if (!(await isFile(imageFile))) {
    const available = await listCifarCCorruptions(folder);
    throw new CttaError(`${imageFile} not found (corruption "${corruption}")`, {
      fix: available.length ? `available corruptions: ${available.join(', ')}` : `expected ${LAYOUT}`,
    });
  }

  const header = await readNpyHeader(imageFile);
  const [rows, h, w, c] = header.shape;
  const shapeOk =
    header.shape.length === 4 && rows! > 0 && rows! % CIFAR_C_SEVERITIES === 0 && (c === 3 || c === 1) && h! > 0 && w! > 0;
  if (!shapeOk || header.dtype !== 'uint8') {
    throw new CttaError(
      `${imageFile}: found ${header.dtype} ${formatShape(header.shape)} (descr '${header.descr}'), ` +
        `expected uint8 [5 * n, H, W, 3] with the 5 severities stacked (CIFAR-10-C: [50000, 32, 32, 3])`,
      { fix: 'use the .npy files of CIFAR-10-C / CIFAR-100-C as distributed, or save uint8 NHWC images' },
    );
  }
  checkNpy(header, imageFile, { dtypes: ['uint8'] }); // rejects fortran_order: True
  const perSeverity = rows! / CIFAR_C_SEVERITIES;
  const count = limit === undefined ? perSeverity : Math.min(limit, perSeverity);
  const first = (severity - 1) * perSeverity;

  const labelFile = join(folder, 'labels.npy');
  const labelHeader = await readNpyHeader(labelFile);
  const labelRows = labelHeader.shape[0];
  if (labelHeader.shape.length !== 1 || (labelRows !== rows && labelRows !== perSeverity)) {
    throw new CttaError(
      `${labelFile}: found ${labelHeader.dtype} ${formatShape(labelHeader.shape)}, expected integer ` +
        `[${rows}] (or [${perSeverity}]) to match ${basename(imageFile)} ${formatShape(header.shape)}`,
    );
  }
  checkNpy(labelHeader, labelFile, { dtypes: INTEGER_DTYPES, shapeText: `[${rows}]` });
  // All labels are read (<= 400 kB) so the class count comes from the whole file, not the slice.
  const allLabels = decodeIntegers(await readNpyRows(labelFile, labelHeader, 0, labelRows!), labelHeader, labelFile);
  let maxLabel = 0;
  for (let i = 0; i < allLabels.length; i++) {
    if (allLabels[i]! < 0) throw new CttaError(`${labelFile}: negative label ${allLabels[i]} at row ${i}`);
    maxLabel = Math.max(maxLabel, allLabels[i]!);
  }
  const labelStart = labelRows === rows ? first : 0;
  const labels = allLabels.slice(labelStart, labelStart + count);
  const images = await readNpyRows(imageFile, header, first, count);

  const dataset = options.dataset ?? (maxLabel >= CIFAR10_CLASSES.length ? 'cifar100-c' : 'cifar10-c');
  const classNames = dataset === 'cifar100-c' ? [...CIFAR100_FINE_CLASSES] : [...CIFAR10_CLASSES];
  if (maxLabel >= classNames.length) {
    throw new CttaError(`${labelFile}: label ${maxLabel} is out of range for ${dataset} (${classNames.length} classes)`);
  }
  return {
    name: dataset,
    split: 'test',
    images,
    labels,
    n: count,
    height: h!,
    width: w!,
    channels: c!,
    classNames,
    source: folder,
  };
}
