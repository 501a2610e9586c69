/** Shared types of the dataset readers. */

export type DatasetSplit = 'train' | 'test';

/** A labelled image set held in memory as uint8 pixels. */
export interface ImageDataset {
  /** Registry name, e.g. "fashion-mnist". */
  name: string;
  split: DatasetSplit;
  /** n * height * width * channels bytes, NHWC order. */
  images: Uint8Array;
  /** n class indices in 0..classNames.length-1. */
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  /** The directory the files were read from. */
  source: string;
}

/** Progress of one file download; `totalBytes` is undefined when the server sends no length. */
export interface DownloadProgress {
  file: string;
  url: string;
  receivedBytes: number;
  totalBytes: number | undefined;
}

/** Options every dataset loader understands. */
export interface LoadDatasetOptions {
  /** A directory holding the files (or a `<dataset>/` subfolder holding them); searched first. */
  dataDir?: string;
  /** Download into the user cache when no local copy is found (default true). */
  allowDownload?: boolean;
  /** Download progress; when given, no progress bar is drawn. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Image files (`image-folder`): the size every image is resized to, and 1 (grey) or 3 channels. */
  image?: { size?: number | [number, number]; channels?: 1 | 3 };
}

/**
 * Which row of a method's per-dataset default table a dataset takes: its own for the datasets
 * the papers tuned on, CIFAR-10's for small images otherwise.
 */
export type DatasetDefaultsKey = 'fashion-mnist' | 'cifar10' | 'cifar100' | 'imagenet';
