/**
 * Where a stream's pixels come from. A `DomainImageSource` returns the images of given sample
 * indices as seen under a domain: either a clean dataset run through the corruption engine, or
 * files that already hold corrupted images (CIFAR-10-C, ImageNet-C).
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { CttaError } from '../errors.js';
import { corruptBatch } from './corruptions/index.js';
import { IMAGE_FOLDER, loadDataset, loadImageFolder } from './datasets/index.js';
import { readCifarC, indexImageNetC, type LazyImageDataset } from './datasets/readers/index.js';
import type { DatasetSplit, ImageDataset } from './datasets/types.js';
import { CLEAN_CORRUPTION, type Domain } from './orderings/index.js';
import type { Scenario } from './scenario.js';

export interface DomainImageSource {
  readonly name: string;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classNames: string[];
  /** Labels of every sample, in index order (what orderings are computed from). */
  readonly labels: Int32Array;
  /** Pixels of the samples `indices` under `domain`: indices.length * H * W * C bytes, NHWC. */
  read(indices: Int32Array, domain: Domain): Promise<Uint8Array>;
}

export interface SourceOptions {
  dataDir?: string;
  /** Seed of the corruption engine's random draws. */
  seed: number;
}

/** Gathers rows of an in-memory dataset. */
function gather(data: ImageDataset, indices: Int32Array): Uint8Array {
  const size = data.height * data.width * data.channels;
  const out = new Uint8Array(indices.length * size);
  indices.forEach((idx, i) => out.set(data.images.subarray(idx * size, (idx + 1) * size), i * size));
  return out;
}

/** A clean dataset corrupted on the fly, deterministically per (seed, sample index, domain). */
export function engineSource(data: ImageDataset, seed: number): DomainImageSource {
  return {
    ...describeSource(data.name, data),
    async read(indices, domain) {
      const clean = gather(data, indices);
      if (domain.corruption === CLEAN_CORRUPTION) return clean;
      return corruptBatch(clean, indices.length, data.height, data.width, data.channels, domain.corruption, domain.severity, {
        seed,
        startIndex: 0,
        indices,
      });
    },
  };
}

/** The descriptive fields of a source, taken from the dataset (or index) it reads. */
function describeSource(name: string, base: Pick<ImageDataset, 'height' | 'width' | 'channels' | 'classNames' | 'labels'>) {
  return { name, height: base.height, width: base.width, channels: base.channels, classNames: base.classNames, labels: base.labels };
}

/** CIFAR-10-C / CIFAR-100-C: one (corruption, severity) slice held in memory at a time. */
async function cifarCSource(dir: string, dataset: 'cifar10-c' | 'cifar100-c', domains: readonly Domain[]): Promise<DomainImageSource> {
  let cached: { key: string; data: ImageDataset } | undefined;
  // Every corruption file the stream will read is checked when it opens, not when reached.
  const corruptions = [...new Set(domains.map((d) => d.corruption).filter((c) => c !== CLEAN_CORRUPTION))];
  const slice = async (d: Domain): Promise<ImageDataset> => {
    const key = `${d.corruption}-${d.severity}`;
    if (cached?.key !== key) cached = { key, data: await readCifarC(dir, { corruption: d.corruption, severity: d.severity, dataset, corruptions }) };
    return cached.data;
  };
  return {
    ...describeSource(dataset, await slice(domains[0]!)),
    async read(indices, domain) {
      if (domain.corruption === CLEAN_CORRUPTION) {
        throw new CttaError(`${dataset} holds no clean domain`, { fix: 'remove "none" from the scenario\'s domains' });
      }
      return gather(await slice(domain), indices);
    },
  };
}

/** ImageNet-C folders: files indexed per domain, decoded per batch (memory stays bounded). */
async function imageNetCSource(root: string, domains: readonly Domain[], image: { resize: number; crop: number }): Promise<DomainImageSource> {
  const indexes = new Map<string, LazyImageDataset>();
  const index = async (d: Domain, checkAll = false): Promise<LazyImageDataset> => {
    const key = `${d.corruption}-${d.severity}`;
    // The first index also checks that every domain's folder exists with the same classes.
    if (!indexes.has(key)) indexes.set(key, await indexImageNetC(root, { corruption: d.corruption, severity: d.severity, ...image, ...(checkAll ? { domains } : {}) }));
    return indexes.get(key)!;
  };
  return {
    ...describeSource('imagenet-c', await index(domains[0]!, true)),
    async read(indices, domain) {
      return (await index(domain)).readImages(Array.from(indices));
    },
  };
}

/** The message for data ctta cannot download when no `--data-dir` was given. */
function needDir(scenario: Scenario, dataDir: string | undefined, what: string): string {
  if (!dataDir) {
    throw new CttaError(`scenario ${scenario.name} reads ${what}, which ctta cannot download`, { fix: `pass --data-dir DIR pointing at your copy of ${what}` });
  }
  return dataDir;
}

/**
 * Loads a dataset of clean images (the registry's: fashion-mnist, cifar10, cifar100 or one added
 * with `registerDataset`) for `scenario`, with `dataDir` as its data folder.
 */
export async function loadScenarioDataset(scenario: Scenario, name: string, split: DatasetSplit, dataDir: string | undefined): Promise<ImageDataset> {
  // CIFAR is never downloaded: say so with the scenario's name rather than the loader's.
  if (name === 'cifar10' || name === 'cifar100') needDir(scenario, dataDir, name.toUpperCase());
  if (name === IMAGE_FOLDER) return loadImageFolderOf(scenario, split, dataDir);
  return loadDataset(name, split, { dataDir });
}

/** A scenario's `image-folder`: its `image.root` (or --data-dir), decoded at `image.size`. */
async function loadImageFolderOf(scenario: Scenario, split: DatasetSplit, dataDir: string | undefined): Promise<ImageDataset> {
  const image = scenario.image ?? {};
  if (image.size === undefined) {
    throw new CttaError(`${scenario.file}: dataset "image-folder" needs image.size, the side (or [height, width]) every image is resized to`, { fix: 'e.g. "image": { "root": "my-images", "size": 32, "channels": 3 }' });
  }
  if (image.resize !== undefined || image.crop !== undefined) {
    throw new CttaError(`${scenario.file}: image.resize and image.crop are for ImageNet-C; an image folder is resized to image.size`, { fix: 'remove resize and crop' });
  }
  const root = image.root !== undefined ? resolveBeside(image.root, scenario.file) : dataDir;
  if (root === undefined) {
    throw new CttaError(`${scenario.file}: dataset "image-folder" needs image.root (or --data-dir), the folder of class sub-folders`, { fix: 'e.g. "image": { "root": "my-images", "size": 32 }' });
  }
  return loadImageFolder(root, split, { size: image.size, channels: image.channels ?? 3 });
}

/**
 * A relative path: in the scenario's folder when it is there, else from the working directory.
 * Not resolveModelPath: a data folder may lie above the scenario ("../data/images"), and it is
 * never looked up in the ctta package, which ships no image folders.
 */
function resolveBeside(path: string, scenarioFile: string): string {
  if (isAbsolute(path)) return path;
  const beside = isAbsolute(scenarioFile) ? join(dirname(scenarioFile), path) : undefined;
  return beside !== undefined && existsSync(beside) ? beside : resolve(path);
}

/** Opens the scenario's data. `dataDir` is required for the CIFAR and ImageNet files; registered datasets get it too. */
export async function openSource(scenario: Scenario, domains: Domain[], options: SourceOptions): Promise<DomainImageSource> {
  switch (scenario.dataset) {
    case 'cifar10-c':
    case 'cifar100-c':
      return cifarCSource(needDir(scenario, options.dataDir, scenario.dataset.toUpperCase()), scenario.dataset, domains);
    case 'imagenet-c':
      return imageNetCSource(needDir(scenario, options.dataDir, 'ImageNet-C'), domains, { resize: scenario.image?.resize ?? 256, crop: scenario.image?.crop ?? 224 });
    default:
      // Every other dataset is clean and corrupted on the fly.
      return engineSource(await loadScenarioDataset(scenario, scenario.dataset, scenario.split, options.dataDir), options.seed);
  }
}
