/**
 * Readers for the datasets people in the field already have on disk: CIFAR-10/100 binary batches,
 * CIFAR-10-C / CIFAR-100-C .npy files, ImageNet-C style and generic class folders of images.
 * (MNIST-style IDX lives in ../idx.ts.)
 */
export {
  CIFAR100_COARSE_CLASSES,
  CIFAR100_FINE_CLASSES,
  CIFAR10_CLASSES,
  readCifarBinary,
  type CifarBinaryOptions,
  type CifarVariant,
} from './cifar-binary.js';
export {
  CIFAR_C_CORRUPTIONS,
  CIFAR_C_EXTRA_CORRUPTIONS,
  CIFAR_C_SEVERITIES,
  listCifarCCorruptions,
  readCifarC,
  type CifarCOptions,
} from './cifar-c.js';
export {
  indexImageFolder,
  indexImageNetC,
  listImageNetC,
  materialize,
  relativeFile,
  type ImageFolderOptions,
  type ImageNetCOptions,
  type ImagePreprocess,
  type LazyImageDataset,
  type ResizeKernel,
} from './image-folder.js';
export {
  INTEGER_DTYPES,
  checkNpy,
  decodeIntegers,
  encodeNpy,
  formatShape,
  parseNpyHeader,
  readNpyHeader,
  readNpyLabels,
  readNpyRows,
  readNpyUint8,
  writeNpy,
  type NpyDtype,
  type NpyExpectation,
  type NpyHeader,
  type NpyWritable,
} from './npy.js';
