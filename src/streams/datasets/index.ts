/**
 * Dataset registry: `loadDataset(name, split, options)` dispatches to the loader registered under
 * `name`. Every dataset here is clean: scenarios corrupt it on the fly with the engine. Files that
 * already hold corrupted images (CIFAR-10-C, ImageNet-C) are read by the stream layer instead
 * (`PRECORRUPTED_DATASETS`, ../sources.ts), since they are read one domain at a time.
 */
import { CttaError } from '../../errors.js';
import { Registry } from '../../util/registry.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { readCifarBinary, type CifarVariant } from './readers/cifar-binary.js';
import { indexImageFolder, materialize, type ImagePreprocess } from './readers/image-folder.js';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { DatasetDefaultsKey, DatasetSplit, ImageDataset, LoadDatasetOptions } from './types.js';

export type { DatasetDefaultsKey, DatasetSplit, DownloadProgress, ImageDataset, LoadDatasetOptions } from './types.js';
export {
  FASHION_MNIST_CHECKSUMS,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_FILES,
  FASHION_MNIST_MIRROR,
  downloadFashionMnist,
  fashionMnistCacheDir,
  loadFashionMnist,
  locateFashionMnist,
  readFashionMnist,
  shippedFashionMnistDir,
} from './fashion-mnist.js';
export type {
  FashionMnistLocation,
  FashionMnistOptions,
  FileChecksum,
  LocateResult,
  PartialSplit,
  PlaceKind,
  PlaceTried,
} from './fashion-mnist.js';
export { encodeIdx, parseIdx, readIdx, readIdxImages, readIdxLabels, writeIdx } from './idx.js';
export type { IdxArray, IdxData, IdxDtype, IdxExpectation } from './idx.js';

export type DatasetLoader = (split: DatasetSplit, options: LoadDatasetOptions) => Promise<ImageDataset>;

/** What `registerDataset` takes. */
export interface DatasetDefinition {
  name: string;
  load: DatasetLoader;
  /** Which row of a method's per-dataset default table applies (default 'cifar10'). */
  defaults?: DatasetDefaultsKey;
  description?: string;
}

/** A registered dataset, with its defaults filled in. */
export interface DatasetEntry extends DatasetDefinition {
  defaults: DatasetDefaultsKey;
  description: string;
}

/** Scenario datasets whose files already hold corrupted images; not loadable with `loadDataset`. */
export const PRECORRUPTED_DATASETS = ['cifar10-c', 'cifar100-c', 'imagenet-c'] as const;
export type PrecorruptedDataset = (typeof PRECORRUPTED_DATASETS)[number];

const PRECORRUPTED_DEFAULTS: Record<PrecorruptedDataset, DatasetDefaultsKey> = {
  'cifar10-c': 'cifar10',
  'cifar100-c': 'cifar100',
  'imagenet-c': 'imagenet',
};

export function isPrecorrupted(name: string): name is PrecorruptedDataset {
  return (PRECORRUPTED_DATASETS as readonly string[]).includes(name);
}

// The pre-corrupted names are reserved so a scenario naming one always means the same files.
const datasets = new Registry<DatasetEntry>('dataset', 'ctta.datasets.registry', {
  reserved: PRECORRUPTED_DATASETS,
  hint: '(or add yours with registerDataset)',
});

/** Add (or replace) a dataset: `registerDataset({ name, load, defaults })`, or `registerDataset(name, loader)`. */
export function registerDataset(definition: DatasetDefinition): void;
export function registerDataset(name: string, loader: DatasetLoader): void;
export function registerDataset(nameOrDefinition: string | DatasetDefinition, loader?: DatasetLoader): void {
  const d: DatasetDefinition = typeof nameOrDefinition === 'string' ? { name: nameOrDefinition, load: loader! } : nameOrDefinition;
  if (typeof d?.load !== 'function') {
    throw new CttaError(`dataset ${String(d?.name)}: no loader`, { fix: 'pass load: (split, options) => Promise<ImageDataset>' });
  }
  datasets.register({ ...d, defaults: d.defaults ?? 'cifar10', description: d.description ?? '' });
}

/** CIFAR binary batches are never downloaded: the loader needs the folder they are in. */
const cifarLoader =
  (variant: CifarVariant): DatasetLoader =>
  async (split, options) => {
    if (!options.dataDir) {
      throw new CttaError(`dataset ${variant} is read from your copy of its binary batches, which ctta cannot download`, {
        fix: 'pass --data-dir DIR (library: options.dataDir) pointing at them',
      });
    }
    return readCifarBinary(options.dataDir, { split, variant });
  };

/** A class-per-folder tree of image files (`<root>/[<split>/]<class>/<image>.{png,jpg,jpeg}`). */
export const IMAGE_FOLDER = 'image-folder';

/**
 * Reads an image folder into memory, every image resized to `image.size` with `image.channels`
 * (1 = grey). A `<root>/<split>` sub-folder is used when there is one (`train/`, `test/`).
 */
export async function loadImageFolder(root: string, split: DatasetSplit, image: Pick<ImagePreprocess, 'size' | 'channels'>): Promise<ImageDataset> {
  const bySplit = join(root, split);
  const dir = existsSync(bySplit) && statSync(bySplit).isDirectory() ? bySplit : root;
  return materialize(await indexImageFolder(dir, { ...image, name: IMAGE_FOLDER, split }));
}

registerDataset({ name: 'fashion-mnist', load: loadFashionMnist, defaults: 'fashion-mnist', description: 'Fashion-MNIST, 28x28 grey, 10 classes (shipped test split, downloaded train split)' });
registerDataset({ name: 'cifar10', load: cifarLoader('cifar10'), defaults: 'cifar10', description: 'CIFAR-10 binary batches, 32x32 RGB, 10 classes (needs --data-dir)' });
registerDataset({ name: 'cifar100', load: cifarLoader('cifar100'), defaults: 'cifar100', description: 'CIFAR-100 binary batches, 32x32 RGB, 100 classes (needs --data-dir)' });
registerDataset({
  name: IMAGE_FOLDER,
  // A scenario gives the root and size in its "image" field (sources.ts); the library passes them here.
  load: async (split, options) => {
    if (!options.dataDir || !options.image?.size) {
      throw new CttaError('dataset image-folder needs the folder and the image size', { fix: 'scenario: "image": { "root": DIR, "size": N, "channels": 1 or 3 }; library: loadDataset("image-folder", split, { dataDir, image: { size, channels } })' });
    }
    return loadImageFolder(options.dataDir, split, options.image);
  },
  defaults: 'cifar10',
  description: 'your images: <root>/[<split>/]<class>/*.{png,jpg,jpeg}, resized to image.size (scenario "image": {root, size, channels})',
});

/** Names `loadDataset` accepts, sorted. */
export function datasetNames(): string[] {
  return datasets.names().sort();
}

/** Every registered dataset, in registration order. */
export function listDatasets(): DatasetEntry[] {
  return datasets.list();
}

export function isDatasetName(name: string): boolean {
  return datasets.has(name);
}

/**
 * The row of a method's per-dataset default table for a scenario's dataset: the pre-corrupted
 * files take their clean dataset's row, a registered dataset the row it declared.
 */
export function datasetDefaultsKey(datasetName: string): DatasetDefaultsKey {
  return isPrecorrupted(datasetName) ? PRECORRUPTED_DEFAULTS[datasetName] : datasets.get(datasetName).defaults;
}

/** Load split `split` of dataset `name`. */
export async function loadDataset(
  name: string,
  split: DatasetSplit,
  options: LoadDatasetOptions = {},
): Promise<ImageDataset> {
  if (!datasets.has(name)) {
    throw new CttaError(`unknown dataset "${name}" (known: ${datasetNames().join(', ')})`, {
      fix: `use one of: ${datasetNames().join(', ')}`,
    });
  }
  if (split !== 'train' && split !== 'test') {
    throw new CttaError(`unknown split "${split as string}" for dataset ${name}`, { fix: 'use "train" or "test"' });
  }
  return datasets.get(name).load(split, options);
}
