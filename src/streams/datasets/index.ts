/** Dataset registry: `loadDataset(name, split, options)` dispatches to the reader for `name`. */
import { CttaError } from '../../errors.js';
import { loadFashionMnist } from './fashion-mnist.js';
import type { DatasetSplit, ImageDataset, LoadDatasetOptions } from './types.js';

export type { DatasetSplit, DownloadProgress, ImageDataset, LoadDatasetOptions } from './types.js';
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
  PlaceKind,
  PlaceTried,
} from './fashion-mnist.js';
export { encodeIdx, parseIdx, readIdx, readIdxImages, readIdxLabels, writeIdx } from './idx.js';
export type { IdxArray, IdxData, IdxDtype, IdxExpectation } from './idx.js';

export type DatasetLoader = (split: DatasetSplit, options: LoadDatasetOptions) => Promise<ImageDataset>;

const loaders = new Map<string, DatasetLoader>([['fashion-mnist', loadFashionMnist]]);

/** Add (or replace) a loader under `name`. */
export function registerDataset(name: string, loader: DatasetLoader): void {
  loaders.set(name, loader);
}

/** Names `loadDataset` accepts, sorted. */
export function datasetNames(): string[] {
  return [...loaders.keys()].sort();
}

/** Load split `split` of dataset `name`. */
export async function loadDataset(
  name: string,
  split: DatasetSplit,
  options: LoadDatasetOptions = {},
): Promise<ImageDataset> {
  const loader = loaders.get(name);
  if (!loader) {
    throw new CttaError(`unknown dataset "${name}" (known: ${datasetNames().join(', ')})`, {
      fix: `use one of: ${datasetNames().join(', ')}`,
    });
  }
  if (split !== 'train' && split !== 'test') {
    throw new CttaError(`unknown split "${split as string}" for dataset ${name}`, { fix: 'use "train" or "test"' });
  }
  return loader(split, options);
}
