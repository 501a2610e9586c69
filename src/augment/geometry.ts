/**
 * Geometric and filtering steps of the CoTTA augmentation, on float NHWC batches, one random
 * draw for the whole batch (torchvision semantics: RandomAffine about the image centre with
 * bilinear sampling and zero fill, GaussianBlur with reflect padding).
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Pads height and width by `p` pixels on every side, repeating the border pixels: the CoTTA
 * authors' step before the affine. `applyCottaView` gets the same pixels from the affine's edge
 * fill; this and `centerCrop` stay as the reference its test compares against.
 */
export function padEdge(x: tf.Tensor4D, p: number): tf.Tensor4D {
  if (p === 0) return tf.clone(x);
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const top = tf.tile(tf.slice(x, [0, 0, 0, 0], [-1, 1, -1, -1]), [1, p, 1, 1]);
    const bottom = tf.tile(tf.slice(x, [0, h - 1, 0, 0], [-1, 1, -1, -1]), [1, p, 1, 1]);
    const tall = tf.concat([top, x, bottom], 1);
    const left = tf.tile(tf.slice(tall, [0, 0, 0, 0], [-1, -1, 1, -1]), [1, 1, p, 1]);
    const right = tf.tile(tf.slice(tall, [0, 0, w - 1, 0], [-1, -1, 1, -1]), [1, 1, p, 1]);
    return tf.concat([left, tall, right], 2) as tf.Tensor4D;
  });
}

export interface AffineParams {
  /** Counter-clockwise rotation in degrees. */
  angle: number;
  /** Translation in pixels (x right, y down). */
  tx: number;
  ty: number;
  scale: number;
}

/**
 * Rotates, scales and translates about the image centre (torchvision's RandomAffine, bilinear).
 * tf.image.transform maps each output pixel to the input point it samples, so it takes the
 * inverse of the forward map `out = c_out + t + s R(angle) (in - c_in)`.
 *
 * `fill: 'edge'` samples outside the image at the nearest border pixel, which equals padding by
 * repeated border pixels first (as CoTTA does) as long as no sample falls beyond that padding.
 * `outputSize` may exceed the input size; the extra border is centred.
 */
export function affine(
  x: tf.Tensor4D,
  p: AffineParams,
  options: { fill?: 'zero' | 'edge'; outputSize?: [number, number] } = {},
): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const [oh, ow] = options.outputSize ?? [h, w];
  const theta = (p.angle * Math.PI) / 180;
  const cos = Math.cos(theta) / p.scale;
  const sin = Math.sin(theta) / p.scale;
  const cx = (w - 1) / 2;
  const cy = (h - 1) / 2;
  const ox = (ow - 1) / 2 + p.tx;
  const oy = (oh - 1) / 2 + p.ty;
  // Image rows grow downwards, so a counter-clockwise turn on screen is R(-angle) in (x, y).
  const row = [cos, -sin, cx - cos * ox + sin * oy, sin, cos, cy - sin * ox - cos * oy, 0, 0];
  return tf.tidy(() => {
    const m = tf.tensor2d(Array.from({ length: n }, () => row), [n, 8]);
    const fill = options.fill === 'edge' ? 'nearest' : 'constant';
    return tf.image.transform(x, m, 'bilinear', fill, 0, [oh, ow]) as tf.Tensor4D;
  });
}

/** Normalised 1-D gaussian taps, as torchvision builds them. */
export function gaussianTaps(kernelSize: number, sigma: number): number[] {
  const half = (kernelSize - 1) / 2;
  const taps = Array.from({ length: kernelSize }, (_, i) => Math.exp(-0.5 * ((i - half) / sigma) ** 2));
  const sum = taps.reduce((a, b) => a + b, 0);
  return taps.map((t) => t / sum);
}

/**
 * Separable gaussian blur. `padding: 'reflect'` (torchvision's) keeps the size; `'valid'` trims
 * `kernelSize / 2` pixels per side, for callers that computed that margin themselves.
 */
export function gaussianBlur(x: tf.Tensor4D, kernelSize: number, sigma: number, padding: 'reflect' | 'valid' = 'reflect'): tf.Tensor4D {
  return tf.tidy(() => {
    const c = x.shape[3];
    const taps = gaussianTaps(kernelSize, sigma);
    const half = Math.floor(kernelSize / 2);
    const padded = padding === 'reflect' ? tf.mirrorPad(x, [[0, 0], [half, half], [half, half], [0, 0]], 'reflect') : x;
    const perChannel = (shape: [number, number]) =>
      tf.tile(tf.tensor4d(taps, [shape[0], shape[1], 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
    const vertical = tf.depthwiseConv2d(padded, perChannel([kernelSize, 1]), 1, 'valid');
    return tf.depthwiseConv2d(vertical, perChannel([1, kernelSize]), 1, 'valid');
  });
}

/** The centred `h x w` window. */
export function centerCrop(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  const top = Math.floor((x.shape[1] - h) / 2);
  const left = Math.floor((x.shape[2] - w) / 2);
  return tf.slice(x, [0, top, left, 0], [-1, h, w, -1]);
}

export function flipHorizontal(x: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(x, 2);
}
