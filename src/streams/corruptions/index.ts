/**
 * The corruption engine: the 15 ImageNet-C corruptions (+ the 4 extra validation ones) at
 * severities 1-5 for any HxWxC uint8 image (C = 1 or 3), with the CIFAR-10-C parameters,
 * deterministic for (seed, image index, corruption, severity). Turns any dataset into a "-C"
 * stream. `registerCorruption` adds more; they get the same per-image random streams.
 *
 * ```ts
 * const out = await corruptImage(img, 'fog', 3, { seed: 0, index: 42 });
 * const batch = await corruptBatch(images, n, 28, 28, 1, 'snow', 5, { seed: 0, startIndex: 0 });
 * ```
 */
import { CttaError } from '../../errors.js';
import { Registry } from '../../util/registry.js';
import { defocusBlur, gaussianBlur, glassBlur, motionBlur, zoomBlur } from './blur.js';
import { brightness, contrast, elasticTransform, jpegCompression, pixelate, saturate } from './digital.js';
import { gaussianNoise, impulseNoise, shotNoise, speckleNoise } from './noise.js';
import { deriveRng } from './rng.js';
import { spatter } from './spatter.js';
import type { CorruptionFn, Image, Severity } from './types.js';
import { fog, frost, snow } from './weather.js';

export type { CorruptionFn, Image, Severity } from './types.js';
export type { CorruptionRng } from './rng.js';
export { encodeJpeg } from './digital.js';
export { frostDir } from './frost-overlays.js';

/** The 15 ImageNet-C / CIFAR-10-C corruptions, in the benchmark's standard order. */
export const CORRUPTIONS = [
  'gaussian_noise',
  'shot_noise',
  'impulse_noise',
  'defocus_blur',
  'glass_blur',
  'motion_blur',
  'zoom_blur',
  'snow',
  'frost',
  'fog',
  'brightness',
  'contrast',
  'elastic_transform',
  'pixelate',
  'jpeg_compression',
] as const;

/** The 4 held-out validation corruptions of the same paper. */
export const EXTRA_CORRUPTIONS = ['speckle_noise', 'gaussian_blur', 'spatter', 'saturate'] as const;

export type BuiltinCorruptionName = (typeof CORRUPTIONS)[number] | (typeof EXTRA_CORRUPTIONS)[number];

/** A shipped corruption's name or one added with `registerCorruption` (`string & {}` keeps editor completion). */
export type CorruptionName = BuiltinCorruptionName | (string & {});

export const SEVERITIES: readonly Severity[] = [1, 2, 3, 4, 5];

/** What `registerCorruption` takes. */
export interface CorruptionDefinition {
  name: string;
  /**
   * Corrupts one image; a pure function of (image, severity, rng). `rng` is derived from (seed,
   * image index, name, severity), so the output is reproducible whatever the batch or order.
   */
  apply: CorruptionFn;
  description?: string;
}

// "none" is the clean domain of scenarios and orderings, so no corruption may take that name.
const corruptions = new Registry<CorruptionDefinition>('corruption', 'ctta.corruptions.registry', { reserved: ['none'] });

/** Adds (or replaces) a corruption; corruptImage, corruptBatch and scenario files then accept its name. */
export function registerCorruption(definition: CorruptionDefinition): void {
  corruptions.register(definition);
}

const BUILTIN: Record<BuiltinCorruptionName, CorruptionFn> = {
  gaussian_noise: gaussianNoise,
  shot_noise: shotNoise,
  impulse_noise: impulseNoise,
  defocus_blur: defocusBlur,
  glass_blur: glassBlur,
  motion_blur: motionBlur,
  zoom_blur: zoomBlur,
  snow,
  frost,
  fog,
  brightness,
  contrast,
  elastic_transform: elasticTransform,
  pixelate,
  jpeg_compression: jpegCompression,
  speckle_noise: speckleNoise,
  gaussian_blur: gaussianBlur,
  spatter,
  saturate,
};
for (const name of [...CORRUPTIONS, ...EXTRA_CORRUPTIONS]) registerCorruption({ name, apply: BUILTIN[name] });

/** Every corruption name, the 15 + 4 shipped ones first, then registered ones. */
export function corruptionNames(): CorruptionName[] {
  return corruptions.names();
}

/** Corruptions that do not consume random numbers (the same for every seed). */
export const DETERMINISTIC_CORRUPTIONS: readonly CorruptionName[] = [
  'defocus_blur',
  'zoom_blur',
  'brightness',
  'contrast',
  'pixelate',
  'jpeg_compression',
  'gaussian_blur',
  'saturate',
];

export function isCorruptionName(name: string): name is CorruptionName {
  return corruptions.has(name);
}

function checkName(name: string): CorruptionName {
  if (!isCorruptionName(name)) {
    throw new CttaError(`unknown corruption "${name}"`, { fix: `corruption must be one of: ${corruptionNames().join(', ')}` });
  }
  return name;
}

function checkSeverity(severity: number): Severity {
  if (!Number.isInteger(severity) || severity < 1 || severity > 5) {
    throw new CttaError(`invalid corruption severity ${String(severity)}`, {
      fix: 'severity must be an integer from 1 to 5 (1, 2, 3, 4, 5)',
    });
  }
  return severity as Severity;
}

function checkInteger(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new CttaError(`invalid corruption ${what} ${String(v)}`, { fix: `${what} must be a non-negative integer` });
  }
}

function checkDims(h: number, w: number, c: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new CttaError(`invalid ${what} size ${h}x${w}`, { fix: 'height and width must be positive integers' });
  }
  if (c !== 1 && c !== 3) {
    throw new CttaError(`invalid ${what} channels ${c}`, { fix: 'channels must be 1 (grey) or 3 (RGB)' });
  }
}

function checkShape(h: number, w: number, c: number, length: number, what: string): void {
  checkDims(h, w, c, what);
  if (length !== h * w * c) {
    throw new CttaError(`${what} data has ${length} bytes, expected height*width*channels = ${h}*${w}*${c} = ${h * w * c}`, {
      fix: 'pass HxWxC uint8 pixels, row-major, channels interleaved',
    });
  }
}

export interface CorruptOptions {
  /** The stream's seed. */
  seed: number;
  /** The image's index in its dataset (so each image gets its own noise, reproducibly). */
  index: number;
}

/**
 * Corrupt one image. The output depends only on (image, name, severity, seed, index). The input
 * is not modified.
 */
export async function corruptImage(img: Image, name: string, severity: number, opts: CorruptOptions): Promise<Image> {
  const corruption = checkName(name);
  const sev = checkSeverity(severity);
  checkInteger('seed', opts.seed);
  checkInteger('index', opts.index);
  checkShape(img.height, img.width, img.channels, img.data.length, 'image');
  const rng = deriveRng(opts.seed, opts.index, corruption, sev);
  return corruptions.get(corruption).apply(img, sev, rng);
}

export interface CorruptBatchOptions {
  seed: number;
  /** Dataset index of the first image; image i of the batch uses index startIndex + i. */
  startIndex: number;
  /** Dataset index of each image, when they are not consecutive (overrides startIndex). */
  indices?: ArrayLike<number>;
}

/** How many sharp-backed corruptions run at once inside a batch (sharp works off the main thread). */
const ASYNC_IN_FLIGHT = 64;

/**
 * Corrupt n images stored as n*h*w*c bytes (NHWC). Returns a new array of the same layout; image
 * i equals corruptImage(image i, name, severity, {seed, index: startIndex + i}).
 */
export async function corruptBatch(
  images: Uint8Array,
  n: number,
  h: number,
  w: number,
  c: number,
  name: string,
  severity: number,
  opts: CorruptBatchOptions,
): Promise<Uint8Array> {
  const corruption = checkName(name);
  const sev = checkSeverity(severity);
  checkInteger('seed', opts.seed);
  checkInteger('startIndex', opts.startIndex);
  checkInteger('n', n);
  if (opts.indices && opts.indices.length !== n) {
    throw new CttaError(`corruptBatch: ${opts.indices.length} indices for ${n} images`, { fix: 'pass one dataset index per image' });
  }
  checkDims(h, w, c, 'batch image');
  if (images.length !== n * h * w * c) {
    throw new CttaError(`batch has ${images.length} bytes, expected n*h*w*c = ${n}*${h}*${w}*${c} = ${n * h * w * c}`, {
      fix: 'pass n images of HxWxC uint8 pixels, NHWC',
    });
  }
  const size = h * w * c;
  const out = new Uint8Array(n * size);
  const fn = corruptions.get(corruption).apply;
  const one = async (i: number): Promise<void> => {
    const img: Image = { data: images.subarray(i * size, (i + 1) * size), height: h, width: w, channels: c };
    const index = opts.indices ? opts.indices[i]! : opts.startIndex + i;
    const res = await fn(img, sev, deriveRng(opts.seed, index, corruption, sev));
    out.set(res.data, i * size);
  };
  for (let i = 0; i < n; i += ASYNC_IN_FLIGHT) {
    const jobs: Promise<void>[] = [];
    for (let j = i; j < Math.min(n, i + ASYNC_IN_FLIGHT); j++) jobs.push(one(j));
    await Promise.all(jobs);
  }
  return out;
}
