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
import { affine, flipHorizontal, gaussianBlur, type AffineParams } from './geometry.js';

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

const uniform = (rng: Rng, range: readonly number[]) => range[0]! + (range[1]! - range[0]!) * rng.float();

/** Every random choice of one view (one draw for the whole batch). */
export interface CottaViewParams {
  /** Colour adjustments in the order they apply. */
  jitter: { op: 'brightness' | 'contrast' | 'saturation' | 'hue' | 'gamma'; value: number }[];
  geometry: AffineParams;
  blurSigma: number;
  flip: boolean;
  noiseStd: number;
  noiseSeed: number;
}

const COLOUR = { brightness: adjustBrightness, contrast: adjustContrast, saturation: adjustSaturation, hue: adjustHue, gamma: adjustGamma };

/** Draws one view's parameters for images of size h x w, in a fixed order (reproducible). */
export function drawCottaView(rng: Rng, h: number, w: number, options: CottaAugmentOptions = {}): CottaViewParams {
  const r = cottaRanges(options.soft);
  const ops = ['brightness', 'contrast', 'saturation', 'hue', 'gamma'] as const;
  const values = ops.map((op) => uniform(rng, r[op]));
  const order = rng.permutation(ops.length);
  // The authors pad by half the image size before the affine; its translation range (1/16 of
  // the size) refers to the padded image.
  const maxShiftX = (1 / 16) * (w + 2 * Math.floor(w / 2));
  const maxShiftY = (1 / 16) * (h + 2 * Math.floor(h / 2));
  const geometry = {
    angle: uniform(rng, [-r.degrees, r.degrees]),
    tx: Math.round(uniform(rng, [-maxShiftX, maxShiftX])),
    ty: Math.round(uniform(rng, [-maxShiftY, maxShiftY])),
    scale: uniform(rng, r.scale),
  };
  return {
    jitter: Array.from(order, (i) => ({ op: ops[i]!, value: values[i]! })),
    geometry,
    blurSigma: uniform(rng, r.blurSigma),
    flip: rng.float() < (options.flipProbability ?? 0.5),
    noiseStd: options.noiseStd ?? 0.005,
    noiseSeed: rng.int(0, 2 ** 31 - 1),
  };
}

/** One augmented view of the batch `x` (float NHWC in [0, 1]); the caller disposes it. */
export function cottaAugment(x: tf.Tensor4D, rng: Rng, options: CottaAugmentOptions = {}): tf.Tensor4D {
  return applyCottaView(x, drawCottaView(rng, x.shape[1], x.shape[2], options));
}

/**
 * Applies drawn parameters. The authors' order is pad (edge) -> affine -> blur -> centre crop;
 * here the affine samples the border pixels directly ('edge' fill) and produces only the crop
 * plus the 2-pixel margin the 5-tap blur reads: the same pixels for 4x less work (a test
 * compares both), except where the reference itself would sample beyond its padding.
 */
export function applyCottaView(x: tf.Tensor4D, v: CottaViewParams): tf.Tensor4D {
  const [, h, w] = x.shape;
  const margin = 2;
  return tf.tidy(() => {
    let y = tf.clipByValue(x, 0, 1) as tf.Tensor4D;
    for (const j of v.jitter) y = COLOUR[j.op](y, j.value);
    y = gaussianBlur(affine(y, v.geometry, { fill: 'edge', outputSize: [h + 2 * margin, w + 2 * margin] }), 5, v.blurSigma, 'valid');
    if (v.flip) y = flipHorizontal(y);
    if (v.noiseStd > 0) y = tf.add(y, tf.randomNormal(y.shape, 0, v.noiseStd, 'float32', v.noiseSeed));
    return tf.clipByValue(y, 0, 1) as tf.Tensor4D;
  });
}
