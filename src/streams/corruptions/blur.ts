/**
 * Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur and the extra gaussian_blur,
 * with the CIFAR-10-C parameters (make_cifar_c.py).
 */
import {
  clippedZoom,
  correlate2d,
  cvGaussianKernel,
  fromFloat,
  fromFloat32,
  gaussianFilter,
  motionBlur as imageMagickMotionBlur,
  newFloat,
  toFloat,
} from './filters.js';
import type { FloatImage } from './filters.js';
import type { CorruptionRng } from './rng.js';
import type { Image, Severity } from './types.js';

/** (disk radius, anti-alias Gaussian sigma) */
export const DEFOCUS_BLUR = [
  [0.3, 0.4],
  [0.4, 0.5],
  [0.5, 0.6],
  [1, 0.2],
  [1.5, 0.1],
] as const;

/** (Gaussian sigma, max pixel displacement, shuffle iterations) */
export const GLASS_BLUR = [
  [0.05, 1, 1],
  [0.25, 1, 1],
  [0.4, 1, 1],
  [0.25, 1, 2],
  [0.4, 1, 2],
] as const;

/** ImageMagick (radius, sigma); the angle is uniform in [-45, 45) degrees. */
export const MOTION_BLUR = [
  [6, 1],
  [6, 1.5],
  [6, 2],
  [8, 2],
  [9, 2.5],
] as const;

/** Zoom factors are numpy's arange(1, stop, 0.01) for these stops. */
export const ZOOM_BLUR_STOP = [1.06, 1.11, 1.16, 1.21, 1.26] as const;

/** Gaussian sigma of the extra gaussian_blur. */
export const GAUSSIAN_BLUR_SIGMA = [0.4, 0.6, 0.7, 0.8, 1] as const;

/**
 * The original's `disk()`: an aliased disk of the given radius on a 17x17 grid (wider when the
 * radius exceeds 8), normalised, then smoothed by cv2.GaussianBlur (3x3, or 5x5 for big disks;
 * BORDER_REFLECT_101). For the CIFAR radii (< 1) the disk is a single pixel, so severities 1-3
 * are 3x3 Gaussians. All-zero outer rings are trimmed (symmetrically, keeping the centre).
 */
export function defocusKernel(radius: number, aliasBlur: number): { kernel: Float64Array; size: number } {
  const coords: number[] = [];
  if (radius <= 8) {
    for (let v = -8; v <= 8; v++) coords.push(v);
  } else {
    const n = Math.ceil(2 * radius + 1);
    for (let i = 0; i < n; i++) coords.push(-radius + i);
  }
  const ksize = radius <= 8 ? 3 : 5;
  const n = coords.length;
  const disk = newFloat(n, n, 1);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const inside = coords[j] * coords[j] + coords[i] * coords[i] <= radius * radius ? 1 : 0;
      disk.data[i * n + j] = inside;
      sum += inside;
    }
  }
  // float32 throughout, as the original's np.float32 disk and cv2.GaussianBlur on it.
  for (let i = 0; i < disk.data.length; i++) disk.data[i] = Math.fround(disk.data[i] / sum);
  const g = cvGaussianKernel(ksize, aliasBlur);
  const g2 = new Float64Array(ksize * ksize);
  for (let i = 0; i < ksize; i++) for (let j = 0; j < ksize; j++) g2[i * ksize + j] = g[i] * g[j];
  const smooth = correlate2d(disk, g2, ksize, ksize, 'reflect101').data.map(Math.fround);
  // Trim rings that are exactly zero.
  const centre = (n - 1) >> 1;
  let r = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (smooth[i * n + j] !== 0) r = Math.max(r, Math.abs(i - centre), Math.abs(j - centre));
    }
  }
  const size = 2 * r + 1;
  const kernel = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) kernel[i * size + j] = smooth[(i + centre - r) * n + (j + centre - r)];
  }
  return { kernel, size };
}

const defocusKernels = new Map<Severity, { kernel: Float64Array; size: number }>();

/** cv2.filter2D(x, -1, disk) per channel (BORDER_REFLECT_101). */
export function defocusBlur(img: Image, severity: Severity): Image {
  let k = defocusKernels.get(severity);
  if (!k) {
    const [radius, alias] = DEFOCUS_BLUR[severity - 1];
    k = defocusKernel(radius, alias);
    defocusKernels.set(severity, k);
  }
  const { kernel, size } = k;
  return fromFloat(correlate2d(toFloat(img), kernel, size, size, 'reflect101'));
}

/**
 * Gaussian blur, "locally shuffle pixels", Gaussian blur again.
 *
 * The shuffle walks rows from H - d down to d + 1 and columns from W - d down to d + 1, draws
 * dx, dy = randint(-d, d) (high exclusive: for d = 1 the offset is -1 or 0) and executes the
 * original's `x[h, w], x[h', w'] = x[h', w'], x[h, w]`. On the HxWx3 arrays of CIFAR-10-C that
 * statement is NOT a swap: numpy evaluates the right side to two views, so x[h, w] receives the
 * neighbour's pixel and the neighbour keeps its value. We reproduce what produced the published
 * data (a copy of the neighbour), for grey images too, so that a grey image is corrupted like
 * the same image replicated to RGB.
 */
export function glassBlur(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const [sigma, d, iterations] = GLASS_BLUR[severity - 1];
  const { height: H, width: W, channels: C } = img;
  // np.uint8(gaussian(x / 255, sigma) * 255): truncation, no clipping needed (a blur of [0,1]).
  const blurred = fromFloat(gaussianFilter(toFloat(img), sigma, 'nearest'));
  const x = blurred.data;
  for (let it = 0; it < iterations; it++) {
    for (let h = H - d; h > d; h--) {
      for (let w = W - d; w > d; w--) {
        const dx = rng.randint(-d, d);
        const dy = rng.randint(-d, d);
        const src = ((h + dy) * W + (w + dx)) * C;
        const dst = (h * W + w) * C;
        for (let c = 0; c < C; c++) x[dst + c] = x[src + c];
      }
    }
  }
  return fromFloat(gaussianFilter(toFloat(blurred), sigma, 'nearest'));
}

/** ImageMagick's motion blur at a random angle in [-45, 45) degrees. */
export function motionBlur(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const [radius, sigma] = MOTION_BLUR[severity - 1];
  const angle = rng.uniformRange(-45, 45);
  return imageMagickMotionBlur(img, radius, sigma, angle);
}

/**
 * numpy.arange(start, stop, step) for floats: ceil((stop - start) / step) values, computed as
 * start + i * delta with delta = (start + step) - start. Reproduced exactly because the length
 * is sensitive to rounding: arange(1, 1.06, 0.01) has 7 values (1.00..1.06), not 6.
 */
export function numpyArange(start: number, stop: number, step: number): number[] {
  const n = Math.ceil((stop - start) / step);
  const delta = start + step - start;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(start + i * delta);
  return out;
}

/**
 * Mean of the image and its centre zooms by every factor (1.00 included, as in the original).
 * The original works in float32 (image, zooms and running sum): so do we, to truncate alike.
 */
export function zoomBlur(img: Image, severity: Severity): Image {
  const factors = numpyArange(1, ZOOM_BLUR_STOP[severity - 1], 0.01);
  const x = toFloat(img);
  for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i]);
  const sum = new Float64Array(x.data.length);
  for (const z of factors) {
    const zoomed = clippedZoom(x, z).data;
    for (let i = 0; i < sum.length; i++) sum[i] = Math.fround(sum[i] + Math.fround(zoomed[i]));
  }
  const k = factors.length + 1;
  const out: FloatImage = { ...x, data: new Float64Array(sum.length) };
  for (let i = 0; i < sum.length; i++) out.data[i] = Math.fround(Math.fround(x.data[i] + sum[i]) / k);
  return fromFloat32(out);
}

/** skimage.filters.gaussian(x / 255, sigma, multichannel=True) (border 'nearest', truncate 4). */
export function gaussianBlur(img: Image, severity: Severity): Image {
  return fromFloat(gaussianFilter(toFloat(img), GAUSSIAN_BLUR_SIGMA[severity - 1], 'nearest'));
}
