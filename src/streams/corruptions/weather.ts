/**
 * Weather corruptions: snow, frost and fog, with the CIFAR-10-C parameters (make_cifar_c.py).
 */
import { cifarFrostOverlays, coverOverlay, frostOverlays } from './frost-overlays.js';
import type { Overlay } from './frost-overlays.js';
import {
  clippedZoom,
  fromFloat,
  fromFloat255,
  greyPlane,
  luma,
  motionBlur,
  newFloat,
  newImage,
  rot180,
  toFloat,
} from './filters.js';
import type { CorruptionRng } from './rng.js';
import type { Image, Severity } from './types.js';

/**
 * (snow mean, snow std, zoom, threshold, blur radius, blur sigma, image weight):
 * a Gaussian "snow" field is zoomed, thresholded, motion-blurred and added twice (the second
 * copy rotated by 180 degrees) to a brightened, slightly washed-out image.
 */
export const SNOW = [
  [0.1, 0.2, 1, 0.6, 8, 3, 0.95],
  [0.1, 0.2, 1, 0.5, 10, 4, 0.9],
  [0.15, 0.3, 1.75, 0.55, 10, 4, 0.9],
  [0.25, 0.3, 2.25, 0.6, 12, 6, 0.85],
  [0.3, 0.3, 1.25, 0.65, 14, 12, 0.8],
] as const;

/** (image weight, frost weight) */
export const FROST = [
  [1, 0.2],
  [1, 0.3],
  [0.9, 0.4],
  [0.85, 0.4],
  [0.75, 0.45],
] as const;

/** (fog strength, plasma wibble decay): a bigger decay gives a smoother fog. */
export const FOG = [
  [0.2, 3],
  [0.5, 3],
  [0.75, 2.5],
  [1, 2],
  [1.5, 1.75],
] as const;

export function snow(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const [mean, std, zoom, threshold, radius, sigma, keep] = SNOW[severity - 1];
  const { height: H, width: W, channels: C } = img;
  const x = toFloat(img);

  // The snow layer: N(mean, std) per pixel, centre-zoomed, small values cut to 0.
  const layer = newFloat(H, W, 1);
  for (let i = 0; i < layer.data.length; i++) layer.data[i] = rng.normal(mean, std);
  const zoomed = clippedZoom(layer, zoom).data;
  // Through an 8-bit PNG into ImageMagick and back, as the original: clip, *255, truncate.
  const layer8 = newImage(H, W, 1);
  for (let i = 0; i < zoomed.length; i++) {
    const v = zoomed[i] < threshold ? 0 : zoomed[i];
    layer8.data[i] = v > 0 ? (v < 1 ? Math.trunc(v * 255) : 255) : 0;
  }
  const angle = rng.uniformRange(-135, -45);
  const blurred8 = motionBlur(layer8, radius, sigma, angle).data;
  const flakes = new Float64Array(H * W);
  for (let i = 0; i < flakes.length; i++) flakes[i] = blurred8[i] / 255;
  const flakesRot = rot180(flakes);

  // x = keep * x + (1 - keep) * max(x, grey * 1.5 + 0.5), then add both snow layers.
  const grey = greyPlane(x);
  const out = newFloat(H, W, C);
  for (let p = 0; p < H * W; p++) {
    const bright = grey[p] * 1.5 + 0.5;
    const s = flakes[p] + flakesRot[p];
    for (let c = 0; c < C; c++) {
      const v = x.data[p * C + c];
      out.data[p * C + c] = keep * v + (1 - keep) * Math.max(v, bright) + s;
    }
  }
  return fromFloat(out);
}

/**
 * Which overlay and where: the original draws randint(5) (so frost6 is never used, a quirk we
 * keep to match the published data), then the crop's top row and left column. For images up to
 * the CIFAR scale the overlays are first reduced by five, as make_cifar_c.py does; an image too
 * big for the reduced overlay uses the full-size one (the ImageNet-C path), and one bigger than
 * that gets the overlay scaled up to cover it.
 */
async function frostCrop(H: number, W: number, rng: CorruptionRng): Promise<{ o: Overlay; top: number; left: number }> {
  const idx = rng.randint(0, 5);
  let o = (await cifarFrostOverlays())[idx];
  if (o.height <= H || o.width <= W) {
    o = (await frostOverlays())[idx];
    if (o.height <= H || o.width <= W) o = await coverOverlay(o, H, W);
  }
  const top = rng.randint(0, o.height - H);
  const left = rng.randint(0, o.width - W);
  return { o, top, left };
}

/**
 * clip(a * x + b * frost_crop) on the 0..255 scale. Grey images blend with the Rec. 601 grey of
 * the (RGB) frost crop.
 */
export async function frost(img: Image, severity: Severity, rng: CorruptionRng): Promise<Image> {
  const [a, b] = FROST[severity - 1];
  const { height: H, width: W, channels: C } = img;
  const { o, top, left } = await frostCrop(H, W, rng);
  const out = newFloat(H, W, C);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const s = ((top + y) * o.width + (left + x)) * 3;
      const p = y * W + x;
      if (C === 3) {
        for (let c = 0; c < 3; c++) out.data[p * 3 + c] = a * img.data[p * 3 + c] + b * o.data[s + c];
      } else {
        out.data[p] = a * img.data[p] + b * luma(o.data[s], o.data[s + 1], o.data[s + 2]);
      }
    }
  }
  return fromFloat255(out);
}

/**
 * Diamond-square plasma fractal on a size x size torus (size a power of two), normalised to [0,1].
 * Follows the original (a modification of FLHerne/mapgen's diamondsquare.py): the corner (0,0)
 * starts at 0, every new point is the mean of its four neighbours (wrapping) plus
 * wibble * U(-wibble, wibble), and wibble is divided by `decay` at every level. Random values are
 * drawn per step in numpy's row-major order: square centres, then the points between two
 * horizontal corners, then those between two vertical corners.
 */
export function plasmaFractal(size: number, decay: number, rng: CorruptionRng): Float64Array {
  const n = size;
  const m = new Float64Array(n * n);
  let step = n;
  let wibble = 100;
  while (step >= 2) {
    const half = step >> 1;
    const g = n / step;
    // Squares: the centre of every square of corners.
    for (let i = 0; i < g; i++) {
      const r0 = i * step;
      const r1 = ((i + 1) % g) * step;
      for (let j = 0; j < g; j++) {
        const c0 = j * step;
        const c1 = ((j + 1) % g) * step;
        // Summation order as numpy's: (corner + below) + (right + below-right).
        const sum = m[r0 * n + c0] + m[r1 * n + c0] + (m[r0 * n + c1] + m[r1 * n + c1]);
        m[(r0 + half) * n + c0 + half] = sum / 4 + wibble * rng.uniformRange(-wibble, wibble);
      }
    }
    // Diamonds on the corner rows: two corners left/right, two centres above/below.
    for (let i = 0; i < g; i++) {
      const r = i * step;
      const above = (((i - 1 + g) % g) * step + half) * n;
      const below = (r + half) * n;
      for (let j = 0; j < g; j++) {
        const c = j * step;
        const cNext = ((j + 1) % g) * step;
        const sum = m[below + c + half] + m[above + c + half] + (m[r * n + c] + m[r * n + cNext]);
        m[r * n + c + half] = sum / 4 + wibble * rng.uniformRange(-wibble, wibble);
      }
    }
    // Diamonds on the corner columns: two corners above/below, two centres left/right.
    for (let i = 0; i < g; i++) {
      const r = i * step;
      const rNext = ((i + 1) % g) * step;
      for (let j = 0; j < g; j++) {
        const c = j * step;
        const left = ((j - 1 + g) % g) * step + half;
        const sum = m[(r + half) * n + c + half] + m[(r + half) * n + left] + (m[r * n + c] + m[rNext * n + c]);
        m[(r + half) * n + c] = sum / 4 + wibble * rng.uniformRange(-wibble, wibble);
      }
    }
    step = half;
    wibble /= decay;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < m.length; i++) lo = Math.min(lo, m[i]);
  for (let i = 0; i < m.length; i++) {
    m[i] -= lo;
    hi = Math.max(hi, m[i]);
  }
  for (let i = 0; i < m.length; i++) m[i] /= hi;
  return m;
}

/**
 * x + s * plasma, rescaled by max / (max + s). The CIFAR code draws a 32x32 map and crops it;
 * we draw the smallest power of two covering the image (32 for 28x28 and 32x32).
 */
export function fog(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const [s, decay] = FOG[severity - 1];
  const { height: H, width: W, channels: C } = img;
  let size = 2;
  while (size < Math.max(H, W)) size *= 2;
  const plasma = plasmaFractal(size, decay, rng);
  const x = toFloat(img);
  let maxVal = 0;
  for (let i = 0; i < x.data.length; i++) maxVal = Math.max(maxVal, x.data[i]);
  const denom = maxVal + s;
  for (let y = 0; y < H; y++) {
    for (let xx = 0; xx < W; xx++) {
      const f = s * plasma[y * size + xx];
      const p = (y * W + xx) * C;
      for (let c = 0; c < C; c++) x.data[p + c] = ((x.data[p + c] + f) * maxVal) / denom; // numpy's order
    }
  }
  return fromFloat(x);
}
