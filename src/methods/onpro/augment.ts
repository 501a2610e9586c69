/**
 * OnPro's (and OCM's) view augmentation, per sample: horizontal flip (p 0.5), greyscale (p 0.25,
 * luma 0.299 / 0.587 / 0.114), random resized crop (scale (0.3, 1.0), ratio (3/4, 4/3)) back to
 * the input size, bilinear. Written from the authors' `utils/my_transform.py`
 * (HorizontalFlipLayer, RandomColorGrayLayer, RandomResizedCropLayer, in that order), on NHWC
 * float batches.
 *
 * Their layers resample with torch's grid_sample (align_corners False, reflection padding). The
 * crop window always lies inside the image, so sample points leave it by at most half a pixel,
 * where reflection then clipping (torch's rule) equals clamping to the border pixel: tfjs's
 * `nearest` fill gives the same pixels. Flip and crop are one affine map, so a view is resampled
 * once; greyscale is a per-pixel linear map and commutes with the (linear) bilinear sampling, so
 * applying it first changes nothing.
 *
 * Randomness is planned on the host (`sampleAugmentParams`, deterministic given the `Rng`) and
 * applied in one batched `tf.image.transform` (`applyAugment`); `onproAugment` does both.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../../util/rng.js';
import { roundHalfEven } from './round-half-even.js';

export interface OnProAugmentOptions {
  /** Probability of a horizontal flip (0.5). */
  flipP?: number;
  /** Probability of greyscale (0.25). No effect on 1-channel images, but the coin is still drawn. */
  greyP?: number;
  /** Range of the crop's area as a fraction of the image's ((0.3, 1.0)). */
  scale?: readonly [number, number];
  /** Range of the crop's width / height ((3/4, 4/3)), drawn log-uniformly. */
  ratio?: readonly [number, number];
  /** Tries per sample before falling back to the whole image (10, as the authors' N * 10 pool). */
  cropTrials?: number;
}

export const ONPRO_AUGMENT_DEFAULTS = {
  flipP: 0.5,
  greyP: 0.25,
  scale: [0.3, 1.0] as const,
  ratio: [3 / 4, 4 / 3] as const,
  cropTrials: 10,
};

/** One sample's augmentation. The crop window is in pixel-edge coordinates (0 .. width), in half-pixel steps. */
export interface AugmentParams {
  flip: boolean;
  grey: boolean;
  top: number;
  left: number;
  height: number;
  width: number;
}

/** ITU-R 601 luma weights, as the authors' RandomColorGrayLayer. */
const LUMA = [0.299, 0.587, 0.114];

/**
 * Draws `n` samples' parameters for images of `height` x `width`. Per sample, in order: the flip
 * coin, the grey coin, the crop.
 *
 * The crop follows the authors' `_sample_latent`: target area U(scale) * H W and log-uniform
 * aspect ratio r give w = round(sqrt(area r)), h = round(sqrt(area / r)) (ties to even, numpy's
 * round), retried until the crop fits; the fallback is the whole image. Theirs draws a pool of
 * 10 N tries for the batch and hands the first N that fit to the samples, so a sample's crop
 * depends on the others' draws; here each sample has its own `cropTrials` tries, the same
 * distribution per sample. The centre moves by k/2 pixels, k an integer uniform in
 * [w - W, W - w] (theirs: randint over the same range, divided by W in normalised coordinates),
 * so the window stays inside the image.
 */
export function sampleAugmentParams(rng: Rng, n: number, height: number, width: number, options: OnProAugmentOptions = {}): AugmentParams[] {
  const o = { ...ONPRO_AUGMENT_DEFAULTS, ...options };
  if (!(o.flipP >= 0 && o.flipP <= 1 && o.greyP >= 0 && o.greyP <= 1)) throw new RangeError(`augment: probabilities must be in [0, 1], got flip ${o.flipP}, grey ${o.greyP}`);
  if (!(o.scale[0] > 0 && o.scale[0] <= o.scale[1])) throw new RangeError(`augment: bad scale range (${o.scale})`);
  if (!(o.ratio[0] > 0 && o.ratio[0] <= o.ratio[1])) throw new RangeError(`augment: bad ratio range (${o.ratio})`);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) throw new RangeError(`augment: bad image size ${height} x ${width}`);
  const area = height * width;
  const logRatio = [Math.log(o.ratio[0]), Math.log(o.ratio[1])] as const;
  const params: AugmentParams[] = [];
  for (let i = 0; i < n; i++) {
    const flip = rng.float() < o.flipP;
    const grey = rng.float() < o.greyP;
    let w = width;
    let h = height;
    for (let t = 0; t < o.cropTrials; t++) {
      const target = area * (o.scale[0] + (o.scale[1] - o.scale[0]) * rng.float());
      const r = Math.exp(logRatio[0] + (logRatio[1] - logRatio[0]) * rng.float());
      const tw = roundHalfEven(Math.sqrt(target * r));
      const th = roundHalfEven(Math.sqrt(target / r));
      if (tw > 0 && tw <= width && th > 0 && th <= height) {
        w = tw;
        h = th;
        break;
      }
    }
    const kx = rng.int(w - width, width - w);
    const ky = rng.int(h - height, height - h);
    params.push({ flip, grey, left: (width - w + kx) / 2, top: (height - h + ky) / 2, width: w, height: h });
  }
  return params;
}

/**
 * The inverse map of one sample (output pixel -> input point, tf.image.transform's row
 * [a0, a1, a2, b0, b1, b2, 0, 0]): output column j samples the crop at its (j + 0.5) / W
 * fraction, i.e. input column left + (j + 0.5) sx - 0.5 with sx = crop width / W (pixel centres
 * at integers); a flip first mirrors that column to W - 1 - column.
 */
function inverseMap(p: AugmentParams, height: number, width: number): number[] {
  const sx = p.width / width;
  const sy = p.height / height;
  const column = p.left + 0.5 * sx - 0.5;
  const row = p.top + 0.5 * sy - 0.5;
  return p.flip ? [-sx, 0, width - 1 - column, 0, sy, row, 0, 0] : [sx, 0, column, 0, sy, row, 0, 0];
}

/**
 * Applies per-sample `params` to an NHWC batch (1 or 3 channels); returns a new [N, H, W, C]
 * tensor. Grey replaces the three channels by their luma; on 1-channel images it does nothing.
 *
 * The result is clamped to the input batch's own [min, max]: every output value is a convex
 * combination of input values, so this only removes float rounding excursions (an ulp above 1
 * for a white pixel), without assuming the images are in [0, 1].
 */
export function applyAugment(x: tf.Tensor4D, params: readonly AugmentParams[]): tf.Tensor4D {
  const [n, height, width, channels] = x.shape;
  if (params.length !== n) throw new RangeError(`applyAugment: ${params.length} parameter sets for ${n} images`);
  if (channels !== 1 && channels !== 3) throw new RangeError(`applyAugment: images must have 1 or 3 channels, got ${channels}`);
  if (n === 0) return tf.clone(x);
  return tf.tidy(() => {
    let coloured: tf.Tensor4D = x;
    if (channels === 3 && params.some((p) => p.grey)) {
      const luma = tf.sum(tf.mul(x, tf.tensor1d(LUMA)), 3, true);
      // Bound by the pixel's own channels: a convex combination cannot leave them but rounding can.
      const bounded = tf.minimum(tf.maximum(luma, tf.min(x, 3, true)), tf.max(x, 3, true));
      const mask = tf.tensor4d(params.map((p) => (p.grey ? 1 : 0)), [n, 1, 1, 1], 'bool');
      coloured = tf.where(tf.tile(mask, [1, height, width, channels]), tf.tile(bounded, [1, 1, 1, 3]), x) as tf.Tensor4D;
    }
    const maps = tf.tensor2d(params.map((p) => inverseMap(p, height, width)), [n, 8]);
    const out = tf.image.transform(coloured, maps, 'bilinear', 'nearest', 0, [height, width]);
    return tf.minimum(tf.maximum(out, tf.min(x)), tf.max(x)) as tf.Tensor4D;
  });
}

/** One OnPro view of every image of `x` (NHWC, 1 or 3 channels): `sampleAugmentParams` then `applyAugment`. */
export function onproAugment(x: tf.Tensor4D, rng: Rng, options: OnProAugmentOptions = {}): tf.Tensor4D {
  const [n, height, width] = x.shape;
  return applyAugment(x, sampleAugmentParams(rng, n, height, width, options));
}
