/**
 * Where a stream's pixels come from. A `DomainImageSource` returns the images of given sample
 * indices as seen under a domain: either a clean dataset run through the corruption engine, or
 * files that already hold corrupted images (CIFAR-10-C, ImageNet-C).
 */
import { CttaError } from '../errors.js';
import { corruptBatch } from './corruptions/index.js';
import { loadDataset } from './datasets/index.js';
import { readCifarBinary, readCifarC, indexImageNetC, type LazyImageDataset } from './datasets/readers/index.js';
import type { ImageDataset } from './datasets/types.js';
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
async function cifarCSource(dir: string, dataset: 'cifar10-c' | 'cifar100-c', first: Domain): Promise<DomainImageSource> {
  let cached: { key: string; data: ImageDataset } | undefined;
  const slice = async (d: Domain): Promise<ImageDataset> => {
    const key = `${d.corruption}-${d.severity}`;
    if (cached?.key !== key) cached = { key, data: await readCifarC(dir, { corruption: d.corruption, severity: d.severity, dataset }) };
    return cached.data;
  };
  return {
    ...describeSource(dataset, await slice(first)),
    async read(indices, domain) {
      if (domain.corruption === CLEAN_CORRUPTION) {
        throw new CttaError(`${dataset} holds no clean domain`, { fix: 'remove "none" from the scenario\'s domains' });
      }
      return gather(await slice(domain), indices);
    },
  };
}

/** ImageNet-C folders: files indexed per domain, decoded per batch (memory stays bounded). */
async function imageNetCSource(root: string, first: Domain, image: { resize: number; crop: number }): Promise<DomainImageSource> {
  const indexes = new Map<string, LazyImageDataset>();
  const index = async (d: Domain): Promise<LazyImageDataset> => {
    const key = `${d.corruption}-${d.severity}`;
    if (!indexes.has(key)) indexes.set(key, await indexImageNetC(root, { corruption: d.corruption, severity: d.severity, ...image }));
    return indexes.get(key)!;
  };
  return {
    ...describeSource('imagenet-c', await index(first)),
    async read(indices, domain) {
      return (await index(domain)).readImages(Array.from(indices));
    },
  };
}

/** Opens the scenario's data. `dataDir` (or the scenario's own) is required for all but Fashion-MNIST. */
export async function openSource(scenario: Scenario, domains: Domain[], options: SourceOptions): Promise<DomainImageSource> {
  const needDir = (what: string): string => {
    if (!options.dataDir) {
      throw new CttaError(`scenario ${scenario.name} reads ${what}, which ctta cannot download`, { fix: `pass --data-dir DIR pointing at your copy of ${what}` });
    }
    return options.dataDir;
  };
  switch (scenario.dataset) {
    case 'fashion-mnist':
      return engineSource(await loadDataset('fashion-mnist', scenario.split, { dataDir: options.dataDir }), options.seed);
    case 'cifar10':
    case 'cifar100':
      return engineSource(await readCifarBinary(needDir(scenario.dataset.toUpperCase()), { split: scenario.split, variant: scenario.dataset }), options.seed);
    case 'cifar10-c':
    case 'cifar100-c':
      return cifarCSource(needDir(scenario.dataset.toUpperCase()), scenario.dataset, domains[0]!);
    case 'imagenet-c':
      return imageNetCSource(needDir('ImageNet-C'), domains[0]!, scenario.image ?? { resize: 256, crop: 224 });
  }
}
