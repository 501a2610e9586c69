/**
 * The augmentation CoTTA averages its teacher over (and ViDA measures uncertainty with), as in
 * the CoTTA authors' `get_tta_transforms`: clip, colour jitter in random order (brightness,
 * contrast, saturation, hue, gamma), edge pad by half the image size, random affine, gaussian
 * blur, centre crop back, random horizontal flip, gaussian noise, clip. Each call draws one set
 * of parameters for the whole batch (the authors transform the batch tensor at once); the noise
 * is per pixel.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import { adjustBrightness, adjustContrast, adjustGamma, adjustHue, adjustSaturation } from './color.js';
import { affine, centerCrop, flipHorizontal, gaussianBlur, padEdge } from './geometry.js';

export interface CottaAugmentOptions {
  /** The authors' "soft" ranges (used for ImageNet in some configs); default the CIFAR ranges. */
  soft?: boolean;
  /** Standard deviation of the additive gaussian noise (0.005 for CIFAR in the authors' code). */
  noiseStd?: number;
  /** Horizontal flip probability. Off for data whose meaning depends on handedness. */
  flipProbability?: number;
}

/** The parameter ranges of the authors' code; `soft` narrows every range. */
export function cottaRanges(soft = false) {
  return soft
    ? { brightness: [0.8, 1.2], contrast: [0.85, 1.15], saturation: [0.75, 1.25], hue: [-0.03, 0.03], gamma: [0.85, 1.15], degrees: 8, scale: [0.95, 1.05], blurSigma: [0.001, 0.25] }
    : { brightness: [0.6, 1.4], contrast: [0.7, 1.3], saturation: [0.5, 1.5], hue: [-0.06, 0.06], gamma: [0.7, 1.3], degrees: 15, scale: [0.9, 1.1], blurSigma: [0.001, 0.5] };
}

const uniform = (rng: Rng, [lo, hi]: number[]) => lo! + (hi! - lo!) * rng.float();

/** One augmented view of the batch `x` (float NHWC in [0, 1]); the caller disposes it. */
export function cottaAugment(x: tf.Tensor4D, rng: Rng, options: CottaAugmentOptions = {}): tf.Tensor4D {
  const r = cottaRanges(options.soft);
  const [, h, w] = x.shape;
  // Draw every parameter before touching tensors, in a fixed order, so views are reproducible.
  const jitter = [
    { f: adjustBrightness, v: uniform(rng, r.brightness) },
    { f: adjustContrast, v: uniform(rng, r.contrast) },
    { f: adjustSaturation, v: uniform(rng, r.saturation) },
    { f: adjustHue, v: uniform(rng, r.hue) },
    { f: adjustGamma, v: uniform(rng, r.gamma) },
  ];
  const order = rng.permutation(jitter.length);
  const pad = Math.floor(h / 2);
  const maxShift = (1 / 16) * (w + 2 * pad);
  const maxShiftY = (1 / 16) * (h + 2 * pad);
  const geometry = {
    angle: uniform(rng, [-r.degrees, r.degrees]),
    tx: Math.round(uniform(rng, [-maxShift, maxShift])),
    ty: Math.round(uniform(rng, [-maxShiftY, maxShiftY])),
    scale: uniform(rng, r.scale),
  };
  const sigma = uniform(rng, r.blurSigma);
  const flip = rng.float() < (options.flipProbability ?? 0.5);
  const noiseSeed = rng.int(0, 2 ** 31 - 1);
  const noiseStd = options.noiseStd ?? 0.005;

  return tf.tidy(() => {
    let y = tf.clipByValue(x, 0, 1) as tf.Tensor4D;
    for (const i of order) y = jitter[i]!.f(y, jitter[i]!.v);
    y = centerCrop(gaussianBlur(affine(padEdge(y, pad), geometry), 5, sigma), h, w);
    if (flip) y = flipHorizontal(y);
    if (noiseStd > 0) y = tf.add(y, tf.randomNormal(y.shape, 0, noiseStd, 'float32', noiseSeed));
    return tf.clipByValue(y, 0, 1) as tf.Tensor4D;
  });
}
