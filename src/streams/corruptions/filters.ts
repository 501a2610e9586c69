/**
 * Small image-processing kernels shared by the corruptions, written for tiny images (plain loops
 * over typed arrays). Each one states whose semantics it reproduces, because the published
 * corruptions were made with scipy/skimage, OpenCV, PIL and ImageMagick, and their border rules
 * and rounding differ.
 */
import type { Image } from './types.js';

/** A float image, HWC, values usually in [0, 1] (the originals divide by 255 first). */
export interface FloatImage {
  data: Float64Array;
  height: number;
  width: number;
  channels: number;
}

export function newFloat(height: number, width: number, channels: number): FloatImage {
  return { data: new Float64Array(height * width * channels), height, width, channels };
}

export function newImage(height: number, width: number, channels: number): Image {
  return { data: new Uint8Array(height * width * channels), height, width, channels };
}

/** x / 255 as float64, like `np.array(x) / 255.`. */
export function toFloat(img: Image): FloatImage {
  const out = newFloat(img.height, img.width, img.channels);
  const src = img.data;
  const dst = out.data;
  for (let i = 0; i < src.length; i++) dst[i] = src[i] / 255;
  return out;
}

/**
 * `np.uint8(np.clip(x, 0, 1) * 255)`: clip, scale and TRUNCATE (numpy's float->uint8 cast),
 * which is how every CIFAR-10-C array was stored.
 */
export function fromFloat(f: FloatImage): Image {
  const out = newImage(f.height, f.width, f.channels);
  const src = f.data;
  const dst = out.data;
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    dst[i] = v > 0 ? (v < 1 ? Math.trunc(v * 255) : 255) : 0; // NaN -> 0
  }
  return out;
}

/**
 * fromFloat for corruptions whose original works in float32 (zoom_blur, snow, elastic_transform):
 * the value is rounded to float32 and so is its product with 255, so that truncation lands on
 * the same integer as numpy's.
 */
export function fromFloat32(f: FloatImage): Image {
  const out = newImage(f.height, f.width, f.channels);
  const src = f.data;
  const dst = out.data;
  for (let i = 0; i < src.length; i++) {
    const v = Math.fround(src[i]);
    dst[i] = v > 0 ? (v < 1 ? Math.trunc(Math.fround(v * 255)) : 255) : 0;
  }
  return out;
}

/** `np.uint8(np.clip(x, 0, 255))` for values already on the 0..255 scale. */
export function fromFloat255(f: FloatImage): Image {
  const out = newImage(f.height, f.width, f.channels);
  const src = f.data;
  const dst = out.data;
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    dst[i] = v > 0 ? (v < 255 ? Math.trunc(v) : 255) : 0;
  }
  return out;
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Round half to even, like C's rint/cvRound and Python's round(). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------
// Border rules. Each maps an out-of-range index into 0..n-1.

export type BorderMode = 'nearest' | 'reflect' | 'reflect101';

/**
 * - nearest:    aaa|abcd|ddd     (scipy 'nearest', OpenCV BORDER_REPLICATE)
 * - reflect:    cba|abcd|dcb     (scipy 'reflect', OpenCV BORDER_REFLECT: half-sample symmetric)
 * - reflect101: dcb|abcd|cba     (scipy 'mirror', OpenCV BORDER_REFLECT_101 = BORDER_DEFAULT)
 */
export function borderIndex(i: number, n: number, mode: BorderMode): number {
  if (i >= 0 && i < n) return i;
  if (mode === 'nearest' || n === 1) return i < 0 ? 0 : n - 1;
  if (mode === 'reflect') {
    const period = 2 * n;
    let j = i % period;
    if (j < 0) j += period;
    return j < n ? j : period - 1 - j;
  }
  const period = 2 * n - 2;
  let j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - j;
}

// ---------------------------------------------------------------------------------------------
// Gaussian filtering with scipy.ndimage.gaussian_filter semantics (what skimage.filters.gaussian
// calls): kernel radius int(truncate * sigma + 0.5), weights exp(-x^2 / 2 sigma^2) normalised,
// separable, rows then columns, channels filtered independently (sigma 0 on the channel axis).

export function gaussianKernel1d(sigma: number, truncate: number): Float64Array {
  const radius = Math.trunc(truncate * sigma + 0.5);
  const k = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const w = Math.exp((-0.5 * i * i) / (sigma * sigma));
    k[i + radius] = w;
    sum += w;
  }
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** Correlate every channel with `kernel` along one spatial axis (0 = rows/vertical, 1 = columns). */
function correlateAxis(f: FloatImage, kernel: Float64Array, axis: 0 | 1, mode: BorderMode): FloatImage {
  const { height: H, width: W, channels: C } = f;
  const r = (kernel.length - 1) >> 1;
  const out = newFloat(H, W, C);
  const src = f.data;
  const dst = out.data;
  const n = axis === 0 ? H : W;
  // Precompute the source index of every tap for every position along the axis.
  const idx = new Int32Array(n * kernel.length);
  for (let p = 0; p < n; p++) {
    for (let t = 0; t < kernel.length; t++) idx[p * kernel.length + t] = borderIndex(p + t - r, n, mode);
  }
  const K = kernel.length;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = axis === 0 ? y : x;
      const o = (y * W + x) * C;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let t = 0; t < K; t++) {
          const q = idx[p * K + t];
          s += kernel[t] * src[(axis === 0 ? q * W + x : y * W + q) * C + c];
        }
        dst[o + c] = s;
      }
    }
  }
  return out;
}

/** skimage.filters.gaussian(x, sigma, mode, truncate) on the spatial axes of a float image. */
export function gaussianFilter(f: FloatImage, sigma: number, mode: BorderMode = 'nearest', truncate = 4): FloatImage {
  // scipy skips an axis whose sigma is (almost) zero: the image passes through untouched.
  if (!(sigma > 1e-15)) return { ...f, data: f.data.slice() };
  const k = gaussianKernel1d(sigma, truncate);
  return correlateAxis(correlateAxis(f, k, 0, mode), k, 1, mode);
}

/**
 * 2-D correlation with an odd-sized kernel centred on its middle tap (OpenCV filter2D with the
 * default anchor), per channel, with the given border rule. Result left in float.
 */
export function correlate2d(f: FloatImage, kernel: Float64Array, kh: number, kw: number, mode: BorderMode): FloatImage {
  const { height: H, width: W, channels: C } = f;
  const ry = (kh - 1) >> 1;
  const rx = (kw - 1) >> 1;
  const out = newFloat(H, W, C);
  const src = f.data;
  const dst = out.data;
  const rows = new Int32Array(H * kh);
  for (let y = 0; y < H; y++) for (let i = 0; i < kh; i++) rows[y * kh + i] = borderIndex(y + i - ry, H, mode) * W;
  const cols = new Int32Array(W * kw);
  for (let x = 0; x < W; x++) for (let j = 0; j < kw; j++) cols[x * kw + j] = borderIndex(x + j - rx, W, mode);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let i = 0; i < kh; i++) {
          const row = rows[y * kh + i];
          for (let j = 0; j < kw; j++) {
            const w = kernel[i * kw + j];
            if (w !== 0) s += w * src[(row + cols[x * kw + j]) * C + c];
          }
        }
        dst[(y * W + x) * C + c] = s;
      }
    }
  }
  return out;
}

/** OpenCV getGaussianKernel(n, sigma) for sigma > 0: exp(-(i - (n-1)/2)^2 / 2 sigma^2), normalised. */
export function cvGaussianKernel(n: number, sigma: number): Float64Array {
  const k = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = i - (n - 1) * 0.5;
    k[i] = Math.exp((-0.5 * x * x) / (sigma * sigma));
    sum += k[i];
  }
  for (let i = 0; i < n; i++) k[i] /= sum;
  return k;
}

// ---------------------------------------------------------------------------------------------
// Resampling.

/**
 * Python's `round(a * z)` output size and the corner-aligned source coordinate of scipy.ndimage.zoom
 * (grid_mode=False): out index o maps to o * (in - 1) / (out - 1).
 */
function zoomAxis(inSize: number, zoom: number): { outSize: number; step: number } {
  const outSize = roundHalfEven(inSize * zoom);
  const step = outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  return { outSize, step };
}

/**
 * The original's `clipped_zoom`: crop the centre ceil(size / z), scale it back up by z with
 * linear interpolation (scipy.ndimage.zoom, order 1) and trim the centre HxW. The original uses
 * the height for both axes (square images); here each axis uses its own size.
 */
/** For each output position along one axis: the two source indices and the second one's weight. */
interface ZoomTaps {
  i0: Int32Array;
  i1: Int32Array;
  w: Float64Array;
}

function zoomTaps(size: number, zoom: number): ZoomTaps {
  const crop = Math.ceil(size / zoom);
  const start = Math.floor((size - crop) / 2);
  const z = zoomAxis(crop, zoom);
  const trim = Math.floor((z.outSize - size) / 2);
  const i0 = new Int32Array(size);
  const i1 = new Int32Array(size);
  const w = new Float64Array(size);
  for (let o = 0; o < size; o++) {
    const s = Math.min((o + trim) * z.step, crop - 1);
    const i = Math.floor(s);
    i0[o] = start + i;
    i1[o] = start + Math.min(i + 1, crop - 1);
    w[o] = s - i;
  }
  return { i0, i1, w };
}

const zoomTapCache = new Map<string, ZoomTaps>();

function cachedZoomTaps(size: number, zoom: number): ZoomTaps {
  const key = `${size}|${zoom}`;
  let t = zoomTapCache.get(key);
  if (!t) {
    t = zoomTaps(size, zoom);
    if (zoomTapCache.size > 4096) zoomTapCache.clear();
    zoomTapCache.set(key, t);
  }
  return t;
}

export function clippedZoom(f: FloatImage, zoom: number): FloatImage {
  const { height: H, width: W, channels: C } = f;
  const ty = cachedZoomTaps(H, zoom);
  const tx = cachedZoomTaps(W, zoom);
  const x0 = tx.i0;
  const x1 = tx.i1;
  const wx = tx.w;
  const out = newFloat(H, W, C);
  const src = f.data;
  const dst = out.data;
  for (let y = 0; y < H; y++) {
    const ya = ty.i0[y];
    const yb = ty.i1[y];
    const wy = ty.w[y];
    for (let x = 0; x < W; x++) {
      const a = (ya * W + x0[x]) * C;
      const b = (ya * W + x1[x]) * C;
      const c_ = (yb * W + x0[x]) * C;
      const d = (yb * W + x1[x]) * C;
      const w = wx[x];
      const o = (y * W + x) * C;
      for (let c = 0; c < C; c++) {
        const top_ = src[a + c] + w * (src[b + c] - src[a + c]);
        const bot = src[c_ + c] + w * (src[d + c] - src[c_ + c]);
        dst[o + c] = top_ + wy * (bot - top_);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ImageMagick's MotionBlurImage (what the original calls through Wand).

/**
 * One-sided Gaussian line blur: width = 2 * ceil(radius) + 1 taps, tap i weighted
 * exp(-i^2 / 2 sigma^2) (normalised) and sampled i pixels away along `angleDeg` (0 = +x, 90 =
 * +y, image y pointing down), offsets rounded as ImageMagick does (ceil(t - 0.5)), pixels outside
 * the image replaced by the nearest edge pixel (ImageMagick's default "edge" virtual pixels).
 * Input and output are uint8. Rounding as the original's round trip through ImageMagick 6 Q16
 * and PNG: the sum is rounded to 16 bits (v * 257 scale), the 8-bit PNG then truncates. Checked
 * bit-exact against ImageMagick 6.9.11 (Wand's MagickMotionBlurImage) on random images.
 */
export function motionBlur(img: Image, radius: number, sigma: number, angleDeg: number): Image {
  const width = radius > 1e-12 ? 2 * Math.ceil(radius) + 1 : 3;
  const s = Math.abs(sigma) < 1e-12 ? 1e-12 : sigma;
  const kernel = new Float64Array(width);
  let norm = 0;
  for (let i = 0; i < width; i++) {
    kernel[i] = Math.exp(-(i * i) / (2 * s * s));
    norm += kernel[i];
  }
  for (let i = 0; i < width; i++) kernel[i] /= norm;
  const rad = (angleDeg * Math.PI) / 180;
  const px = width * Math.sin(rad);
  const py = width * Math.cos(rad);
  const hyp = Math.hypot(px, py);
  const offX = new Int32Array(width);
  const offY = new Int32Array(width);
  for (let i = 0; i < width; i++) {
    offX[i] = Math.ceil((i * py) / hyp - 0.5);
    offY[i] = Math.ceil((i * px) / hyp - 0.5);
  }
  const { height: H, width: W, channels: C } = img;
  const out = newImage(H, W, C);
  const src = img.data;
  const dst = out.data;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let i = 0; i < width; i++) {
          const yy = clamp(y + offY[i], 0, H - 1);
          const xx = clamp(x + offX[i], 0, W - 1);
          acc += kernel[i] * src[(yy * W + xx) * C + c];
        }
        const q16 = Math.floor(acc * 257 + 0.5);
        dst[(y * W + x) * C + c] = clamp(Math.floor(q16 / 257), 0, 255);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Colour.

/** Rec. 601 luma (OpenCV RGB2GRAY, PIL "L"), written so that r = g = b returns r exactly. */
export function luma(r: number, g: number, b: number): number {
  return r + 0.587 * (g - r) + 0.114 * (b - r);
}

/**
 * skimage.color.rgb2hsv for one pixel in [0,1]; writes [h, s, v] into `out`. Ties between
 * maxima resolve as skimage's (blue over green over red), grey gives h = s = 0.
 */
export function rgbToHsv(r: number, g: number, b: number, out: Float64Array): void {
  const v = Math.max(r, g, b);
  const delta = v - Math.min(r, g, b);
  let h = 0;
  let s = 0;
  if (delta !== 0) {
    s = delta / v;
    if (b === v) h = 4 + (r - g) / delta;
    else if (g === v) h = 2 + (b - r) / delta;
    else h = (g - b) / delta;
    h = h / 6;
    h = h - Math.floor(h); // Python's % 1.
  }
  out[0] = h;
  out[1] = s;
  out[2] = v;
}

/** skimage.color.hsv2rgb for one pixel; writes [r, g, b] into `out`. */
export function hsvToRgb(h: number, s: number, v: number, out: Float64Array): void {
  const hi6 = Math.floor(h * 6);
  const f = h * 6 - hi6;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  switch (((hi6 % 6) + 6) % 6) {
    case 0:
      out[0] = v; out[1] = t; out[2] = p; break;
    case 1:
      out[0] = q; out[1] = v; out[2] = p; break;
    case 2:
      out[0] = p; out[1] = v; out[2] = t; break;
    case 3:
      out[0] = p; out[1] = q; out[2] = v; break;
    case 4:
      out[0] = t; out[1] = p; out[2] = v; break;
    default:
      out[0] = v; out[1] = p; out[2] = q; break;
  }
}

/**
 * Run an RGB per-pixel float transform on any image: RGB as is; grey replicated to RGB, transformed
 * and brought back with Rec. 601 luma (which returns the value itself when the channels stay
 * equal). Input and output are floats in [0,1] (unclipped output).
 */
export function mapRgbPixels(
  f: FloatImage,
  fn: (rgb: Float64Array) => void,
): FloatImage {
  const out = newFloat(f.height, f.width, f.channels);
  const px = new Float64Array(3);
  const n = f.height * f.width;
  const src = f.data;
  const dst = out.data;
  if (f.channels === 3) {
    for (let i = 0; i < n; i++) {
      px[0] = src[3 * i];
      px[1] = src[3 * i + 1];
      px[2] = src[3 * i + 2];
      fn(px);
      dst[3 * i] = px[0];
      dst[3 * i + 1] = px[1];
      dst[3 * i + 2] = px[2];
    }
  } else {
    for (let i = 0; i < n; i++) {
      px[0] = px[1] = px[2] = src[i];
      fn(px);
      dst[i] = luma(px[0], px[1], px[2]);
    }
  }
  return out;
}

/** Rec. 601 grey of each pixel as a HxW plane (the image itself when it is grey). */
export function greyPlane(f: FloatImage): Float64Array {
  const n = f.height * f.width;
  const g = new Float64Array(n);
  if (f.channels === 1) {
    g.set(f.data);
  } else {
    for (let i = 0; i < n; i++) g[i] = luma(f.data[3 * i], f.data[3 * i + 1], f.data[3 * i + 2]);
  }
  return g;
}

/** Rotate a HxW plane by 180 degrees (np.rot90(k=2)). */
export function rot180(plane: Float64Array): Float64Array {
  const out = new Float64Array(plane.length);
  for (let i = 0; i < plane.length; i++) out[i] = plane[plane.length - 1 - i];
  return out;
}
