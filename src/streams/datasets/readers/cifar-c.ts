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
 *
 * Integrity: the folder given may hold the files directly or in a CIFAR-10-C / CIFAR-100-C
 * subfolder; the first of these holding labels.npy or any corruption file must hold labels.npy
 * (no silent fall-back to the subfolder). Every call checks the header of each corruption file
 * a stream will read (option `corruptions`, default: every benchmark corruption file present):
 * same dtype and shape as the one read, not truncated. A stream reading one corruption at a time
 * thus fails when it opens, not half-way with another file.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';

import { CttaError } from '../../../errors.js';
import type { ImageDataset } from '../types.js';
import { CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from './cifar-binary.js';
import { INTEGER_DTYPES, checkNpy, decodeIntegers, formatShape, readNpyHeader, readNpyRows, type NpyHeader } from './npy.js';

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
  /**
   * The corruptions the caller will read from the same folder (e.g. every domain of a scenario):
   * each file must exist and match the one read in dtype and shape. Default: every file of
   * CIFAR_C_CORRUPTIONS and CIFAR_C_EXTRA_CORRUPTIONS present in the folder.
   */
  corruptions?: readonly string[];
}

const LAYOUT = '<dir>/<corruption>.npy (uint8 [50000, 32, 32, 3], severities 1-5 stacked) and <dir>/labels.npy';

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Corruption names whose files mark a folder as (part of) CIFAR-10-C / CIFAR-100-C. */
const KNOWN_CORRUPTIONS: readonly string[] = [...CIFAR_C_CORRUPTIONS, ...CIFAR_C_EXTRA_CORRUPTIONS];

/** Regular files among `names` in `folder` (none when the folder does not exist). */
async function filesIn(folder: string, names: readonly string[]): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(folder);
  } catch {
    return [];
  }
  const present = new Set(entries);
  const out: string[] = [];
  for (const n of names) if (present.has(n) && (await isFile(join(folder, n)))) out.push(n);
  return out;
}

function setName(dataset: CifarCOptions['dataset']): string {
  return dataset ?? 'CIFAR-10-C / CIFAR-100-C';
}

/** At most `max` items, then "and N more". */
function someOf(items: readonly string[], max = 4): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/**
 * `dir` itself, or its CIFAR-10-C / CIFAR-100-C subfolder: the first holding labels.npy or any
 * corruption file (a known one, or `corruption`), which must then hold labels.npy.
 */
async function locate(dir: string, dataset: CifarCOptions['dataset'], corruption?: string): Promise<string> {
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new CttaError(`CIFAR-C folder ${dir} does not exist`, { fix: `expected ${LAYOUT}` });
  const subfolders =
    dataset === 'cifar10-c' ? ['CIFAR-10-C'] : dataset === 'cifar100-c' ? ['CIFAR-100-C'] : ['CIFAR-10-C', 'CIFAR-100-C'];
  const marks = [...new Set([...KNOWN_CORRUPTIONS, ...(corruption ? [corruption] : [])])].map((c) => `${c}.npy`);
  for (const folder of [dir, ...subfolders.map((s) => join(dir, s))]) {
    if (await isFile(join(folder, 'labels.npy'))) return folder;
    const present = await filesIn(folder, marks);
    if (present.length > 0) {
      throw new CttaError(
        `${dir} holds ${someOf(present.map((f) => relative(dir, join(folder, f))))} but not labels.npy of the ${setName(dataset)} test split`,
        { fix: `add labels.npy (from the same download) to ${folder}, or point --data-dir at a folder holding the whole set` },
      );
    }
  }
  throw new CttaError(`${join(dir, 'labels.npy')} not found: ${dir} is not a CIFAR-10-C / CIFAR-100-C folder`, {
    fix: `expected ${LAYOUT}`,
  });
}

/** Headers already checked, by path, valid while the file's size and mtime stay the same. */
const checkedHeaders = new Map<string, { size: number; mtimeMs: number; header: NpyHeader }>();

/** The header of a corruption file other than the one read, from the cache when unchanged. */
async function otherHeader(file: string): Promise<NpyHeader> {
  const s = await stat(file);
  const cached = checkedHeaders.get(file);
  if (cached && cached.size === s.size && cached.mtimeMs === s.mtimeMs) return cached.header;
  const header = await readNpyHeader(file); // also rejects truncated files
  checkedHeaders.set(file, { size: s.size, mtimeMs: s.mtimeMs, header });
  return header;
}

/**
 * Every corruption file the caller will read must look like `reference` (already checked against
 * labels.npy): uint8, C order, the same shape.
 */
async function checkOthers(
  folder: string,
  names: readonly string[],
  reference: { file: string; header: NpyHeader },
  labels: { file: string; rows: number },
): Promise<void> {
  for (const name of names) {
    if (typeof name !== 'string' || name === '' || /[\\/]/.test(name)) {
      throw new CttaError(`CIFAR-C option corruptions must list file stems such as "fog" (got ${JSON.stringify(name)})`);
    }
    const file = join(folder, `${name}.npy`);
    if (file === reference.file) continue;
    if (!(await isFile(file))) {
      const available = await listCifarCCorruptions(folder);
      throw new CttaError(`${file} not found (corruption "${name}")`, {
        fix: available.length ? `available corruptions: ${available.join(', ')}` : `expected ${LAYOUT}`,
      });
    }
    const header = await otherHeader(file);
    const same =
      header.dtype === 'uint8' &&
      header.shape.length === reference.header.shape.length &&
      header.shape.every((d, i) => d === reference.header.shape[i]);
    if (!same) {
      throw new CttaError(
        `${file}: found ${header.dtype} ${formatShape(header.shape)}, expected uint8 ${formatShape(reference.header.shape)} ` +
          `like ${basename(reference.file)} (and ${basename(labels.file)}, ${labels.rows} labels)`,
        { fix: 'replace it with the file from the same CIFAR-10-C / CIFAR-100-C download, or remove it if no scenario reads it' },
      );
    }
    checkNpy(header, file, { dtypes: ['uint8'] }); // rejects fortran_order: True
  }
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
  const folder = await locate(dir, options.dataset, corruption);
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
  // Every other file the caller will read, before any image is: a stream reading one corruption
  // at a time fails here, when it opens, rather than half-way.
  const others = options.corruptions ?? (await filesIn(folder, KNOWN_CORRUPTIONS.map((c) => `${c}.npy`))).map((f) => f.slice(0, -4));
  await checkOthers(folder, others, { file: imageFile, header }, { file: labelFile, rows: labelRows! });
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
