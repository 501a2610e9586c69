/**
 * The source domain as EAR's detector sees it, from clean source images (the method context's
 * `cleanImages`), built once at init:
 *  - HDFF's centring scalar per tapped layer (the mean pooled activation over images and channels);
 *  - per-channel mean and standard deviation of the pooled taps, which standardise the adaptors'
 *    inputs (our choice: the taps' scales differ by layer, and Adam on raw ReLU means trains worse);
 *  - the source class descriptors, each image bundled into the class the base model predicts for
 *    it (our choice: `cleanImages` gives no labels; HDFF bundles by the true label), and the
 *    statistics of the images' leave-one-out similarities to them.
 */
import * as tf from '@tensorflow/tfjs';
import type { Network } from '../../models/network.js';
import type { DomainDescriptors, HdcProjector } from './hdc.js';
import { disposePass, encoderPass } from './taps.js';

/** Images per encoder pass while calibrating (bounds the activations held at once). */
const CHUNK = 250;

export interface SourceCalibration {
  /** Per-channel mean and std of the concatenated pooled taps, [1, sum of channels]. */
  inputMean: Float32Array;
  inputStd: Float32Array;
}

/** Standard deviations below this are taken as this (a channel that never fires). */
const MIN_STD = 1e-3;

/**
 * Reads the calibration images through the frozen encoder, sets the projector's layer means and
 * fills `source` (descriptors and their in-domain similarity statistics). Does not dispose `images`.
 */
export function calibrateSource(
  network: Network,
  layers: readonly tf.layers.Layer[],
  images: tf.Tensor4D,
  projector: HdcProjector,
  source: DomainDescriptors,
): SourceCalibration {
  const n = images.shape[0];
  const channels = projector.channels;
  const width = channels.reduce((a, b) => a + b, 0);
  // Pooled taps of every image, [n, width] row-major (small: width floats an image).
  const taps = new Float32Array(n * width);
  const pseudoLabels = new Int32Array(n);
  for (let start = 0; start < n; start += CHUNK) {
    const size = Math.min(CHUNK, n - start);
    const x = tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]);
    const pass = encoderPass(network, layers, x);
    try {
      const joined = tf.tidy(() => tf.concat(pass.pooled, 1));
      taps.set(joined.dataSync(), start * width);
      joined.dispose();
      const predicted = tf.tidy(() => tf.argMax(pass.logits, 1));
      pseudoLabels.set(predicted.dataSync() as Int32Array, start);
      predicted.dispose();
    } finally {
      disposePass(pass);
      x.dispose();
    }
  }

  const inputMean = new Float32Array(width);
  const inputStd = new Float32Array(width);
  for (let j = 0; j < width; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += taps[i * width + j]!;
    const mean = s / n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (taps[i * width + j]! - mean) ** 2;
    inputMean[j] = mean;
    inputStd[j] = Math.max(Math.sqrt(v / Math.max(n - 1, 1)), MIN_STD);
  }

  // HDFF's centring: one scalar per layer, the mean over the images and the layer's channels.
  let offset = 0;
  projector.setLayerMeans(
    channels.map((c) => {
      const mean = inputMean.subarray(offset, offset + c).reduce((a, b) => a + b, 0) / c;
      offset += c;
      return mean;
    }),
  );

  // Descriptors of every chunk, bundled; then each image's leave-one-out similarity to the full set.
  const descriptorsOf = (start: number, size: number) =>
    tf.tidy(() => {
      const rows = tf.tensor2d(taps.subarray(start * width, (start + size) * width), [size, width]);
      let at = 0;
      const pooled = channels.map((c) => {
        const p = tf.slice(rows, [0, at], [size, c]) as tf.Tensor2D;
        at += c;
        return p;
      });
      return projector.encode(pooled);
    });
  for (let start = 0; start < n; start += CHUNK) {
    const size = Math.min(CHUNK, n - start);
    const h = descriptorsOf(start, size);
    source.add(h, pseudoLabels.subarray(start, start + size));
    h.dispose();
  }
  for (let start = 0; start < n; start += CHUNK) {
    const size = Math.min(CHUNK, n - start);
    const h = descriptorsOf(start, size);
    source.stats.add(source.leaveOneOut(h, pseudoLabels.subarray(start, start + size)));
    h.dispose();
  }
  return { inputMean, inputStd };
}
