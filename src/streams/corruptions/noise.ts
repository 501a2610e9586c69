/**
 * Noise corruptions: gaussian_noise, shot_noise, impulse_noise and the extra speckle_noise.
 * Parameters are the CIFAR-10-C ones (make_cifar_c.py). Noise is drawn independently for every
 * value, channels included, as the originals do (so RGB noise is coloured).
 */
import { fromFloat, toFloat } from './filters.js';
import type { CorruptionRng } from './rng.js';
import type { Image, Severity } from './types.js';

/** Standard deviation of the additive noise, in units of the [0,1] range. */
export const GAUSSIAN_NOISE_STD = [0.04, 0.06, 0.08, 0.09, 0.1] as const;
/** Photons per unit intensity: the image is Poisson(x * c) / c. */
export const SHOT_NOISE_PHOTONS = [500, 250, 100, 75, 50] as const;
/** Fraction of values replaced by salt (1) or pepper (0), half each. */
export const IMPULSE_NOISE_AMOUNT = [0.01, 0.02, 0.03, 0.05, 0.07] as const;
/** Standard deviation of the multiplicative noise. */
export const SPECKLE_NOISE_STD = [0.06, 0.1, 0.12, 0.16, 0.2] as const;

/** clip(x + N(0, c)) */
export function gaussianNoise(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const c = GAUSSIAN_NOISE_STD[severity - 1];
  const f = toFloat(img);
  const d = f.data;
  for (let i = 0; i < d.length; i++) d[i] += c * rng.normal();
  return fromFloat(f);
}

/** clip(Poisson(x * c) / c) */
export function shotNoise(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const c = SHOT_NOISE_PHOTONS[severity - 1];
  const f = toFloat(img);
  const d = f.data;
  for (let i = 0; i < d.length; i++) d[i] = rng.poisson(d[i] * c) / c;
  return fromFloat(f);
}

/**
 * skimage.util.random_noise(mode='s&p', amount=c): each value is independently "flipped" with
 * probability c, and a flipped value becomes 1 or 0 with probability 1/2 each.
 */
export function impulseNoise(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const c = IMPULSE_NOISE_AMOUNT[severity - 1];
  const f = toFloat(img);
  const d = f.data;
  for (let i = 0; i < d.length; i++) {
    // Two draws per value, as the original's two Bernoulli masks.
    const flipped = rng.float() < c;
    const salted = rng.float() < 0.5;
    if (flipped) d[i] = salted ? 1 : 0;
  }
  return fromFloat(f);
}

/** clip(x + x * N(0, c)) */
export function speckleNoise(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const c = SPECKLE_NOISE_STD[severity - 1];
  const f = toFloat(img);
  const d = f.data;
  for (let i = 0; i < d.length; i++) d[i] += d[i] * c * rng.normal();
  return fromFloat(f);
}
