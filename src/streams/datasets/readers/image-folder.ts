/**
 * Folders of image files, indexed without decoding and decoded lazily per batch with sharp:
 *
 *   generic:     <root>/<class>/**\/*.{jpg,jpeg,png}              (torchvision ImageFolder)
 *   ImageNet-C:  <root>/<corruption>/<severity>/<wnid>/*.JPEG
 *
 * Classes are the sorted sub-folder names (code-point order, like Python's `sorted`), files are
 * sorted too, so indices are stable across machines. Only `readImages(indices)` touches pixels:
 * a 50k-image folder costs its file list in memory, not 7.5 GB of decoded images.
 *
 * Preprocessing (fixed output size, so a batch is one NHWC block):
 *   - `resize` + `crop` (default 256 / 224): scale the shorter side to `resize`, then take the
 *     central `crop` x `crop`, as torchvision's Resize(256) + CenterCrop(224) that the ImageNet-C
 *     papers use (RobustBench "Res256Crop224");
 *   - `size`: resize straight to size x size (or [height, width]), for small images such as
 *     Tiny-ImageNet-C's 64 x 64, where cropping would lose too much.
 * Bilinear ("linear") resampling by default, the torchvision default; EXIF orientation is
 * ignored, as PIL does.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import sharp from 'sharp';

import { CttaError } from '../../../errors.js';
import type { DatasetSplit, ImageDataset } from '../types.js';

export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

export interface ImagePreprocess {
  /** Shorter side after resizing (default 256 unless `size` is given). */
  resize?: number;
  /** Side of the central square crop (default 224; `resize` when only `resize` is given). */
  crop?: number;
  /** Resize straight to this size instead (no crop); excludes `resize` / `crop`. */
  size?: number | [height: number, width: number];
  /** 3 = RGB (default), 1 = grey. Alpha is dropped; grey images are expanded to RGB. */
  channels?: 1 | 3;
  /** Default "linear" (bilinear). */
  kernel?: ResizeKernel;
}

export interface ImageFolderOptions extends ImagePreprocess {
  /** Dataset name (default: the folder's name). */
  name?: string;
  split?: DatasetSplit;
  /** File extensions to index, case-insensitive (default .jpg, .jpeg, .png). */
  extensions?: readonly string[];
  /**
   * The full class list, when the folder may hold only some classes: labels are positions in
   * this list, so they match the model's outputs (e.g. all 1000 ImageNet wnids, sorted).
   */
  classNames?: readonly string[];
  /** Images decoded at the same time by readImages (default 4). */
  concurrency?: number;
}

/** An indexed image folder: labels and metadata in memory, pixels decoded on demand. */
export interface LazyImageDataset {
  name: string;
  split: DatasetSplit;
  n: number;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  labels: Int32Array;
  source: string;
  /** Absolute file paths, aligned with `labels`. */
  files: readonly string[];
  /** Decode, resize and crop these images: indices.length * height * width * channels bytes, NHWC. */
  readImages(indices: ArrayLike<number>): Promise<Uint8Array>;
}

export interface ImageNetCOptions extends ImageFolderOptions {
  corruption: string;
  /** 1..5. */
  severity: number;
  /**
   * Every (corruption, severity) the caller will index later from the same root (e.g. all domains
   * of a stream): checked now, so a stream fails when it opens rather than half-way. Each must
   * exist and hold the same class (wnid) folders as the one indexed.
   */
  domains?: readonly { corruption: string; severity: number }[];
}

const DEFAULT_EXTENSIONS = ['.jpg', '.jpeg', '.png'];
const GENERIC_LAYOUT = '<root>/<class>/<image>.{jpg,jpeg,png}';
const IMAGENET_C_LAYOUT = '<root>/<corruption>/<severity 1-5>/<wnid>/<image>.JPEG';

/** Code-point order: locale-independent, the same as Python's sorted(). */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Sub-folder names of `dir`, sorted; symlinks to folders count. */
export async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    if (e.isDirectory() || (e.isSymbolicLink() && (await isDirectory(join(dir, e.name))))) out.push(e.name);
  }
  return out.sort(byCodePoint);
}

/** Image files under `dir` (recursively), sorted by their path relative to `dir`. */
async function imageFiles(dir: string, extensions: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (folder: string): Promise<void> => {
    const entries = await readdir(folder, { withFileTypes: true });
    entries.sort((a, b) => byCodePoint(a.name, b.name));
    for (const e of entries) {
      const path = join(folder, e.name);
      let kind: 'dir' | 'file' | 'other' = e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other';
      if (e.isSymbolicLink()) {
        const s = await stat(path).catch(() => undefined);
        kind = s?.isDirectory() ? 'dir' : s?.isFile() ? 'file' : 'other';
      }
      if (kind === 'dir') await walk(path);
      else if (kind === 'file') {
        const lower = e.name.toLowerCase();
        if (extensions.some((ext) => lower.endsWith(ext))) out.push(path);
      }
    }
  };
  await walk(dir);
  return out;
}

interface Geometry {
  height: number;
  width: number;
  channels: 1 | 3;
  kernel: ResizeKernel;
  mode: 'resize-crop' | 'direct';
  resize: number;
}

function positiveInt(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new CttaError(`image folder option ${field} must be a positive integer (got ${JSON.stringify(value)})`);
  }
  return value;
}

function geometryOf(options: ImagePreprocess): Geometry {
  const channels = options.channels ?? 3;
  if (channels !== 1 && channels !== 3) {
    throw new CttaError(`image folder option channels must be 1 or 3 (got ${JSON.stringify(channels)})`);
  }
  const kernel = options.kernel ?? 'linear';
  if (options.size !== undefined) {
    if (options.resize !== undefined || options.crop !== undefined) {
      throw new CttaError('image folder options: give either size (direct resize) or resize/crop, not both');
    }
    const [h, w] = Array.isArray(options.size) ? options.size : [options.size, options.size];
    return { height: positiveInt(h, 'size'), width: positiveInt(w, 'size'), channels, kernel, mode: 'direct', resize: 0 };
  }
  const resize = positiveInt(options.resize ?? options.crop ?? 256, 'resize');
  const crop = positiveInt(options.crop ?? (options.resize !== undefined ? resize : 224), 'crop');
  if (crop > resize) {
    throw new CttaError(`image folder option crop (${crop}) is larger than resize (${resize})`, {
      fix: 'the crop is taken after scaling the shorter side to resize; use crop <= resize',
    });
  }
  return { height: crop, width: crop, channels, kernel, mode: 'resize-crop', resize };
}

/** A problem found by our own checks (structural, safe to print as it is). */
class DecodeProblem extends Error {}

/** The image format a file's first bytes announce, for messages (never the bytes themselves). */
async function sniffFormat(file: string): Promise<string | undefined> {
  let head: Uint8Array;
  try {
    const fh = await open(file, 'r');
    try {
      head = new Uint8Array(16);
      const { bytesRead } = await fh.read(head, 0, 16, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
  const starts = (...b: number[]) => b.every((v, i) => head[i] === v);
  const ascii = (at: number, text: string) => [...text].every((c, i) => head[at + i] === c.charCodeAt(0));
  if (head.length === 0) return 'empty file';
  if (starts(0xff, 0xd8, 0xff)) return 'JPEG';
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'PNG';
  if (ascii(0, 'GIF8')) return 'GIF';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'WebP';
  if (starts(0x49, 0x49, 0x2a, 0x00) || starts(0x4d, 0x4d, 0x00, 0x2a)) return 'TIFF';
  if (ascii(4, 'ftyp')) return 'HEIF/AVIF';
  if (ascii(0, 'BM')) return 'BMP';
  return undefined;
}

/**
 * Why a file did not decode, in words that never quote the file: the decoder's own message can
 * carry bytes of it (e.g. an XML parser's), so it is kept as the error's cause only.
 */
async function decodeFailure(file: string, e: unknown): Promise<string> {
  if (e instanceof DecodeProblem) return e.message;
  const format = await sniffFormat(file);
  if (format === 'empty file') return 'the file is empty';
  return format ? `a truncated, damaged or unsupported ${format} file` : 'not a JPEG or PNG image (unknown format)';
}

/** Decode one file to exactly height x width x channels uint8 pixels. */
async function decodeOne(file: string, g: Geometry): Promise<Uint8Array> {
  try {
    let img = sharp(file, { failOn: 'error' });
    if (g.mode === 'direct') {
      img = img.resize(g.width, g.height, { fit: 'fill', kernel: g.kernel });
    } else {
      const meta = await img.metadata();
      const w0 = meta.width;
      const h0 = meta.height;
      if (!w0 || !h0) throw new DecodeProblem('no image size in the file header');
      // torchvision Resize(int): the shorter side becomes `resize`, the longer one int(resize * long / short).
      const [w1, h1] = w0 <= h0 ? [g.resize, Math.floor((g.resize * h0) / w0)] : [Math.floor((g.resize * w0) / h0), g.resize];
      // torchvision CenterCrop: top = int(round((h - crop) / 2)).
      const left = Math.round((w1 - g.width) / 2);
      const top = Math.round((h1 - g.height) / 2);
      img = img
        .resize(w1, h1, { fit: 'fill', kernel: g.kernel })
        .extract({ left, top, width: g.width, height: g.height });
    }
    img = g.channels === 3 ? img.removeAlpha().toColourspace('srgb') : img.removeAlpha().toColourspace('b-w');
    const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.width !== g.width || info.height !== g.height || info.channels !== g.channels) {
      throw new DecodeProblem(`decoded to ${info.width}x${info.height}x${info.channels}, wanted ${g.width}x${g.height}x${g.channels}`);
    }
    return data;
  } catch (e) {
    if (e instanceof CttaError) throw e;
    throw new CttaError(`${file}: cannot decode image: ${await decodeFailure(file, e)}`, {
      fix: 'remove or replace the damaged file',
      cause: e,
    });
  }
}

function makeLazy(
  meta: Omit<LazyImageDataset, 'readImages' | 'height' | 'width' | 'channels'>,
  g: Geometry,
  concurrency: number,
): LazyImageDataset {
  const pixels = g.height * g.width * g.channels;
  const readImages = async (indices: ArrayLike<number>): Promise<Uint8Array> => {
    const out = new Uint8Array(indices.length * pixels);
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i]!;
      if (!Number.isInteger(k) || k < 0 || k >= meta.n) {
        throw new RangeError(`readImages: index ${k} at position ${i} is outside 0..${meta.n - 1}`);
      }
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < indices.length) {
        const i = next++;
        out.set(await decodeOne(meta.files[indices[i]!]!, g), i * pixels);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, indices.length) }, worker));
    return out;
  };
  return { ...meta, height: g.height, width: g.width, channels: g.channels, readImages };
}

/** Index `<classDir>/<class>/...` folders into files + labels. */
async function indexClasses(
  root: string,
  classDirs: readonly string[],
  options: ImageFolderOptions,
): Promise<{ files: string[]; labels: Int32Array; classNames: string[] }> {
  const extensions = (options.extensions ?? DEFAULT_EXTENSIONS).map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase());
  const classNames = options.classNames ? [...options.classNames] : [...classDirs];
  const position = new Map(classNames.map((c, i) => [c, i] as const));
  if (position.size !== classNames.length) throw new CttaError('image folder option classNames lists a class twice');
  const files: string[] = [];
  const labels: number[] = [];
  for (const cls of classDirs) {
    const label = position.get(cls);
    if (label === undefined) {
      throw new CttaError(`${join(root, cls)}: class folder "${cls}" is not in the given classNames`, {
        fix: 'add it to classNames, or remove the folder',
      });
    }
    for (const f of await imageFiles(join(root, cls), extensions)) {
      files.push(f);
      labels.push(label);
    }
  }
  if (files.length === 0) {
    throw new CttaError(`${root}: no ${extensions.join('/')} images in its ${classDirs.length} class folders`, {
      fix: `expected ${GENERIC_LAYOUT}`,
    });
  }
  return { files, labels: Int32Array.from(labels), classNames };
}

function checkConcurrency(options: ImageFolderOptions): number {
  return options.concurrency === undefined ? 4 : positiveInt(options.concurrency, 'concurrency');
}

/** Index a generic class-per-folder image tree. */
export async function indexImageFolder(root: string, options: ImageFolderOptions = {}): Promise<LazyImageDataset> {
  const g = geometryOf(options);
  const concurrency = checkConcurrency(options);
  if (!(await isDirectory(root))) {
    throw new CttaError(`image folder ${root} does not exist`, { fix: `expected ${GENERIC_LAYOUT}` });
  }
  const classDirs = await subfolders(root);
  if (classDirs.length === 0) {
    throw new CttaError(`${root} has no class sub-folders`, { fix: `expected ${GENERIC_LAYOUT}` });
  }
  const { files, labels, classNames } = await indexClasses(root, classDirs, options);
  return makeLazy(
    {
      name: options.name ?? basename(root),
      split: options.split ?? 'test',
      n: files.length,
      classNames,
      labels,
      source: root,
      files,
    },
    g,
    concurrency,
  );
}

/** Corruptions of an ImageNet-C style tree and the severities each holds, sorted. */
export async function listImageNetC(root: string): Promise<{ corruption: string; severities: number[] }[]> {
  if (!(await isDirectory(root))) {
    throw new CttaError(`ImageNet-C folder ${root} does not exist`, { fix: `expected ${IMAGENET_C_LAYOUT}` });
  }
  const out: { corruption: string; severities: number[] }[] = [];
  for (const corruption of await subfolders(root)) {
    const severities = (await subfolders(join(root, corruption)))
      .filter((s) => /^[1-5]$/.test(s))
      .map(Number)
      .sort((a, b) => a - b);
    if (severities.length > 0) out.push({ corruption, severities });
  }
  return out;
}

/** Index one (corruption, severity) of an ImageNet-C style tree. */
export async function indexImageNetC(root: string, options: ImageNetCOptions): Promise<LazyImageDataset> {
  const { corruption, severity } = options;
  const g = geometryOf(options);
  const concurrency = checkConcurrency(options);
  if (!Number.isInteger(severity) || severity < 1 || severity > 5) {
    throw new CttaError(`ImageNet-C severity must be an integer 1..5 (got ${JSON.stringify(severity)})`);
  }
  if (typeof corruption !== 'string' || corruption === '' || /[\\/]/.test(corruption)) {
    throw new CttaError(`ImageNet-C corruption must be a folder name such as "gaussian_noise" (got ${JSON.stringify(corruption)})`);
  }
  const available = await listImageNetC(root);
  const entry = available.find((a) => a.corruption === corruption);
  const corruptionDir = join(root, corruption);
  if (!entry) {
    throw new CttaError(`${corruptionDir} not found (corruption "${corruption}")`, {
      fix: available.length
        ? `available corruptions: ${available.map((a) => a.corruption).join(', ')}`
        : `expected ${IMAGENET_C_LAYOUT}`,
    });
  }
  const dir = join(corruptionDir, String(severity));
  if (!entry.severities.includes(severity)) {
    throw new CttaError(`${dir} not found (severity ${severity} of "${corruption}")`, {
      fix: `available severities of ${corruption}: ${entry.severities.join(', ')}; expected ${IMAGENET_C_LAYOUT}`,
    });
  }
  const classDirs = await subfolders(dir);
  if (classDirs.length === 0) {
    throw new CttaError(`${dir} has no class (wnid) sub-folders`, { fix: `expected ${IMAGENET_C_LAYOUT}` });
  }
  if (options.domains) await checkDomains(root, available, options.domains, dir, classDirs);
  const { files, labels, classNames } = await indexClasses(dir, classDirs, options);
  return makeLazy(
    {
      name: options.name ?? 'imagenet-c',
      split: options.split ?? 'test',
      n: files.length,
      classNames,
      labels,
      source: dir,
      files,
    },
    g,
    concurrency,
  );
}

/** At most `max` names, then "and N more". */
function someOf(items: readonly string[], max = 4): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/** The other domains a stream will read must exist and hold the same class folders as `refDir`. */
async function checkDomains(
  root: string,
  available: readonly { corruption: string; severities: number[] }[],
  domains: readonly { corruption: string; severity: number }[],
  refDir: string,
  refClasses: readonly string[],
): Promise<void> {
  const checked = new Set<string>([refDir]);
  for (const { corruption, severity } of domains) {
    const dir = join(root, String(corruption), String(severity));
    if (checked.has(dir)) continue;
    checked.add(dir);
    const entry = available.find((a) => a.corruption === corruption);
    if (!entry || !entry.severities.includes(severity)) {
      throw new CttaError(`${dir} not found (severity ${severity} of "${corruption}")`, {
        fix: entry
          ? `available severities of ${corruption}: ${entry.severities.join(', ')}; expected ${IMAGENET_C_LAYOUT}`
          : `available corruptions: ${available.map((a) => a.corruption).join(', ') || 'none'}; expected ${IMAGENET_C_LAYOUT}`,
      });
    }
    const classes = await subfolders(dir);
    const have = new Set(classes);
    const want = new Set(refClasses);
    const missing = refClasses.filter((c) => !have.has(c));
    const extra = classes.filter((c) => !want.has(c));
    if (missing.length > 0 || extra.length > 0) {
      const parts = [
        missing.length ? `${someOf(missing)} ${missing.length === 1 ? 'is' : 'are'} missing` : undefined,
        extra.length ? `${someOf(extra)} ${extra.length === 1 ? 'is' : 'are'} extra` : undefined,
      ].filter((p) => p !== undefined);
      throw new CttaError(`${dir} holds ${classes.length} class folders, expected the ${refClasses.length} of ${refDir}: ${parts.join('; ')}`, {
        fix: 'complete the copy (every corruption and severity holds the same wnid folders), or leave the domain out of the scenario',
      });
    }
  }
}

/** Decode a lazy dataset (or the listed images of it) into an in-memory ImageDataset. */
export async function materialize(lazy: LazyImageDataset, indices?: ArrayLike<number>): Promise<ImageDataset> {
  const chosen = indices ?? Int32Array.from({ length: lazy.n }, (_, i) => i);
  const labels = new Int32Array(chosen.length);
  for (let i = 0; i < chosen.length; i++) labels[i] = lazy.labels[chosen[i]!]!;
  return {
    name: lazy.name,
    split: lazy.split,
    images: await lazy.readImages(chosen),
    labels,
    n: chosen.length,
    height: lazy.height,
    width: lazy.width,
    channels: lazy.channels,
    classNames: [...lazy.classNames],
    source: lazy.source,
  };
}

/** A file's path relative to the dataset root, for messages and manifests. */
export function relativeFile(lazy: LazyImageDataset, index: number): string {
  return relative(lazy.source, lazy.files[index]!);
}
