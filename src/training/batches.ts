/**
 * Turning uint8 images into float batches, with the training augmentation (random crop after
 * zero padding + horizontal flip) done on the typed arrays: for 28x28 images this is far cheaper
 * than tensor ops and keeps the tensor count per step small.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageDataset } from '../streams/datasets/types.js';
import type { Rng } from '../util/rng.js';

export interface AugmentOptions {
  /** Zero padding before the random crop back to the original size (0 = no crop). */
  cropPad: number;
  /** Mirror left-right with probability 1/2. */
  flip: boolean;
}

/**
 * Float [0,1] NHWC tensor of the given samples; with `augment` and an rng, each sample is
 * randomly shifted (crop of the zero-padded image) and flipped.
 */
export function imageBatch(data: ImageDataset, indices: ArrayLike<number>, augment?: { options: AugmentOptions; rng: Rng }): tf.Tensor4D {
  const { height: h, width: w, channels: c } = data;
  const size = h * w * c;
  const out = new Float32Array(indices.length * size);
  for (let b = 0; b < indices.length; b++) {
    const src = indices[b]! * size;
    const dst = b * size;
    if (!augment) {
      for (let i = 0; i < size; i++) out[dst + i] = data.images[src + i]! / 255;
      continue;
    }
    const pad = augment.options.cropPad;
    const dy = pad > 0 ? augment.rng.int(-pad, pad) : 0;
    const dx = pad > 0 ? augment.rng.int(-pad, pad) : 0;
    const flip = augment.options.flip && augment.rng.float() < 0.5;
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      if (sy < 0 || sy >= h) continue; // zero padding: the output stays 0
      for (let x = 0; x < w; x++) {
        const sx = (flip ? w - 1 - x : x) + dx;
        if (sx < 0 || sx >= w) continue;
        for (let k = 0; k < c; k++) out[dst + (y * w + x) * c + k] = data.images[src + (sy * w + sx) * c + k]! / 255;
      }
    }
  }
  return tf.tensor4d(out, [indices.length, h, w, c]);
}

/** Head-index labels: dataset class ids mapped through `classes` (id -> position). */
export function labelBatch(data: ImageDataset, indices: ArrayLike<number>, classIndex: Map<number, number>): Int32Array {
  const out = new Int32Array(indices.length);
  for (let b = 0; b < indices.length; b++) out[b] = classIndex.get(data.labels[indices[b]!]!)!;
  return out;
}

/** Indices of the samples whose label is in `classes`, in dataset order. */
export function samplesOfClasses(data: ImageDataset, classes: readonly number[]): Int32Array {
  const keep = new Set(classes);
  const idx: number[] = [];
  for (let i = 0; i < data.n; i++) if (keep.has(data.labels[i]!)) idx.push(i);
  return Int32Array.from(idx);
}
