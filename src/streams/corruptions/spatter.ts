/**
 * The extra corruption spatter (make_cifar_c.py): severities 1-3 splash pale-turquoise water
 * whose shading comes from an OpenCV pipeline (Canny edges, distance transform, histogram
 * equalisation, an emboss filter); severities 4-5 cover blobs with mud.
 *
 * The OpenCV operations it needs are reimplemented below on 8-bit planes, with OpenCV's border
 * rules and rounding.
 */
import { borderIndex, clamp, fromFloat, gaussianFilter, luma, newFloat, roundHalfEven, toFloat } from './filters.js';
import type { CorruptionRng } from './rng.js';
import type { Image, Severity } from './types.js';

/** (liquid mean, liquid std, smoothing sigma, threshold, intensity, mud?) */
export const SPATTER = [
  [0.62, 0.1, 0.7, 0.7, 0.5, 0],
  [0.65, 0.1, 0.8, 0.7, 0.5, 0],
  [0.65, 0.3, 1, 0.69, 0.5, 0],
  [0.65, 0.1, 0.7, 0.69, 0.6, 1],
  [0.65, 0.1, 0.5, 0.68, 0.6, 1],
] as const;

const WATER_RGB = [175 / 255, 238 / 255, 238 / 255] as const; // pale turquoise
const MUD_RGB = [63 / 255, 42 / 255, 20 / 255] as const; // mud brown

/** 3x3 correlation of a plane (BORDER_REFLECT_101), float result. */
function correlate3x3(src: ArrayLike<number>, H: number, W: number, k: readonly number[]): Float64Array {
  const out = new Float64Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let s = 0;
      for (let i = 0; i < 3; i++) {
        const yy = borderIndex(y + i - 1, H, 'reflect101');
        for (let j = 0; j < 3; j++) {
          const w = k[i * 3 + j];
          if (w !== 0) s += w * src[yy * W + borderIndex(x + j - 1, W, 'reflect101')];
        }
      }
      out[y * W + x] = s;
    }
  }
  return out;
}

const BOX3 = [1 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 9, 1 / 9];

/** cv2.Canny(img, low, high) with a 3x3 Sobel and the L1 gradient norm; edges are 255. */
export function canny(src: Uint8Array, H: number, W: number, low: number, high: number): Uint8Array {
  // Sobel with BORDER_REPLICATE, as OpenCV's Canny uses.
  const dx = new Int32Array(H * W);
  const dy = new Int32Array(H * W);
  const at = (y: number, x: number) => src[clamp(y, 0, H - 1) * W + clamp(x, 0, W - 1)];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      dx[y * W + x] =
        at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1) - at(y - 1, x - 1) - 2 * at(y, x - 1) - at(y + 1, x - 1);
      dy[y * W + x] =
        at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1) - at(y - 1, x - 1) - 2 * at(y - 1, x) - at(y - 1, x + 1);
    }
  }
  const mag = new Int32Array(H * W);
  for (let i = 0; i < mag.length; i++) mag[i] = Math.abs(dx[i]) + Math.abs(dy[i]);
  const magAt = (y: number, x: number) => (y < 0 || y >= H || x < 0 || x >= W ? 0 : mag[y * W + x]);

  // Non-maximum suppression along the gradient direction (sectors split at 22.5 / 67.5 degrees,
  // OpenCV's fixed-point tan(22.5) test), then double threshold. 0 none, 1 weak, 2 strong.
  const SHIFT = 15;
  const TG22 = Math.trunc(0.4142135623730950488 * (1 << SHIFT) + 0.5);
  const state = new Uint8Array(H * W);
  const stack: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const m = mag[i];
      if (m <= low) continue;
      const xs = dx[i];
      const ys = dy[i];
      const ax = Math.abs(xs);
      const ay = Math.abs(ys) * (1 << SHIFT);
      const tg22x = ax * TG22;
      let isMax: boolean;
      if (ay < tg22x) {
        isMax = m > magAt(y, x - 1) && m >= magAt(y, x + 1);
      } else {
        const tg67x = tg22x + ax * (1 << (SHIFT + 1));
        if (ay > tg67x) {
          isMax = m > magAt(y - 1, x) && m >= magAt(y + 1, x);
        } else {
          const s = (xs ^ ys) < 0 ? -1 : 1;
          isMax = m > magAt(y - 1, x - s) && m > magAt(y + 1, x + s);
        }
      }
      if (!isMax) continue;
      if (m > high) {
        state[i] = 2;
        stack.push(i);
      } else {
        state[i] = 1;
      }
    }
  }
  // Hysteresis: weak pixels 8-connected to a strong one become edges.
  while (stack.length > 0) {
    const i = stack.pop() as number;
    const y = Math.floor(i / W);
    const x = i - y * W;
    for (let oy = -1; oy <= 1; oy++) {
      for (let ox = -1; ox <= 1; ox++) {
        const yy = y + oy;
        const xx = x + ox;
        if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
        const j = yy * W + xx;
        if (state[j] === 1) {
          state[j] = 2;
          stack.push(j);
        }
      }
    }
  }
  const out = new Uint8Array(H * W);
  for (let i = 0; i < out.length; i++) out[i] = state[i] === 2 ? 255 : 0;
  return out;
}

/**
 * cv2.distanceTransform(src, DIST_L2, 5): distance of every non-zero pixel to the nearest zero
 * pixel with OpenCV's 5x5 chamfer (steps 1, 1.4, 2.1969, in 16-bit fixed point). Pixels outside
 * the image are not zeros. Float32 result.
 */
export function distanceTransformL2Mask5(src: Uint8Array, H: number, W: number): Float32Array {
  const SHIFT = 16;
  const HV = roundHalfEven(1 * (1 << SHIFT));
  const DIAG = roundHalfEven(1.4 * (1 << SHIFT));
  const LONG = roundHalfEven(2.1969 * (1 << SHIFT));
  const INF = 0x7fffffff;
  const B = 2;
  const TW = W + 2 * B;
  const t = new Float64Array((H + 2 * B) * TW).fill(INF);
  const T = (y: number, x: number) => (y + B) * TW + (x + B);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (src[y * W + x] === 0) {
        t[T(y, x)] = 0;
        continue;
      }
      let d = t[T(y - 2, x - 1)] + LONG;
      d = Math.min(d, t[T(y - 2, x + 1)] + LONG);
      d = Math.min(d, t[T(y - 1, x - 2)] + LONG);
      d = Math.min(d, t[T(y - 1, x - 1)] + DIAG);
      d = Math.min(d, t[T(y - 1, x)] + HV);
      d = Math.min(d, t[T(y - 1, x + 1)] + DIAG);
      d = Math.min(d, t[T(y - 1, x + 2)] + LONG);
      d = Math.min(d, t[T(y, x - 1)] + HV);
      t[T(y, x)] = d;
    }
  }
  const out = new Float32Array(H * W);
  for (let y = H - 1; y >= 0; y--) {
    for (let x = W - 1; x >= 0; x--) {
      let d = t[T(y, x)];
      if (d > HV) {
        d = Math.min(d, t[T(y + 2, x + 1)] + LONG);
        d = Math.min(d, t[T(y + 2, x - 1)] + LONG);
        d = Math.min(d, t[T(y + 1, x + 2)] + LONG);
        d = Math.min(d, t[T(y + 1, x + 1)] + DIAG);
        d = Math.min(d, t[T(y + 1, x)] + HV);
        d = Math.min(d, t[T(y + 1, x - 1)] + DIAG);
        d = Math.min(d, t[T(y + 1, x - 2)] + LONG);
        d = Math.min(d, t[T(y, x + 1)] + HV);
        t[T(y, x)] = d;
      }
      out[y * W + x] = d / (1 << SHIFT);
    }
  }
  return out;
}

/** cv2.equalizeHist on an 8-bit plane. */
export function equalizeHist(src: Uint8Array): Uint8Array {
  const hist = new Int32Array(256);
  for (let i = 0; i < src.length; i++) hist[src[i]]++;
  let first = 0;
  while (hist[first] === 0) first++;
  const total = src.length;
  const out = new Uint8Array(src.length);
  if (hist[first] === total) return out.fill(first);
  const scale = Math.fround(255 / (total - hist[first]));
  const lut = new Uint8Array(256);
  let sum = 0;
  for (let i = first + 1; i < 256; i++) {
    sum += hist[i];
    lut[i] = clamp(roundHalfEven(Math.fround(sum * scale)), 0, 255);
  }
  for (let i = 0; i < src.length; i++) out[i] = lut[src[i]];
  return out;
}

/** The water shading of severities 1-3 (the original's `dist` pipeline). */
function waterShading(liquid8: Uint8Array, H: number, W: number): Float64Array {
  const edges = canny(liquid8, H, W, 50, 150);
  const notEdges = new Uint8Array(H * W);
  for (let i = 0; i < notEdges.length; i++) notEdges[i] = 255 - edges[i];
  const dist = distanceTransformL2Mask5(notEdges, H, W);
  for (let i = 0; i < dist.length; i++) dist[i] = Math.min(dist[i], 20); // THRESH_TRUNC at 20
  const blurred = correlate3x3(dist, H, W, BOX3);
  const d8 = new Uint8Array(H * W);
  for (let i = 0; i < d8.length; i++) d8[i] = Math.trunc(Math.fround(blurred[i])); // .astype(np.uint8)
  const eq = equalizeHist(d8);
  // filter2D(CV_8U) with an emboss kernel: round and saturate to 0..255.
  const emboss = correlate3x3(eq, H, W, [-2, -1, 0, -1, 1, 1, 0, 1, 2]);
  const e8 = new Uint8Array(H * W);
  for (let i = 0; i < e8.length; i++) e8[i] = clamp(roundHalfEven(emboss[i]), 0, 255);
  // blur on 8-bit: rounded box mean.
  const smooth = correlate3x3(e8, H, W, BOX3);
  const out = new Float64Array(H * W);
  for (let i = 0; i < out.length; i++) out[i] = clamp(Math.round(smooth[i]), 0, 255);
  return out;
}

export function spatter(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const [mean, std, sigma, threshold, intensity, mud] = SPATTER[severity - 1];
  const { height: H, width: W, channels: C } = img;
  const x = toFloat(img);

  const liquid = newFloat(H, W, 1);
  for (let i = 0; i < liquid.data.length; i++) liquid.data[i] = rng.normal(mean, std);
  const smooth = gaussianFilter(liquid, sigma, 'nearest').data;
  for (let i = 0; i < smooth.length; i++) if (smooth[i] < threshold) smooth[i] = 0;

  const colour = (rgb: readonly [number, number, number]) =>
    C === 3 ? rgb : ([luma(rgb[0], rgb[1], rgb[2])] as readonly number[]);

  if (mud === 0) {
    // (liquid * 255).astype(uint8); the original would wrap values above 1, we saturate.
    const liquid8 = new Uint8Array(H * W);
    for (let i = 0; i < liquid8.length; i++) liquid8[i] = clamp(Math.trunc(smooth[i] * 255), 0, 255);
    const dist = waterShading(liquid8, H, W);
    const m = new Float64Array(H * W);
    let maxM = 0;
    for (let i = 0; i < m.length; i++) {
      m[i] = Math.fround(liquid8[i] * dist[i]);
      maxM = Math.max(maxM, m[i]);
    }
    // The original divides by the maximum; an image without any water (max 0) stays clean.
    const k = maxM > 0 ? intensity / maxM : 0;
    const col = colour(WATER_RGB);
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < C; c++) x.data[p * C + c] += m[p] * k * col[c];
    }
    return fromFloat(x);
  }

  const mask = newFloat(H, W, 1);
  for (let i = 0; i < smooth.length; i++) mask.data[i] = smooth[i] > threshold ? 1 : 0;
  const m = gaussianFilter(mask, intensity, 'nearest').data;
  for (let i = 0; i < m.length; i++) if (m[i] < 0.8) m[i] = 0;
  const col = colour(MUD_RGB);
  for (let p = 0; p < H * W; p++) {
    for (let c = 0; c < C; c++) x.data[p * C + c] = x.data[p * C + c] * (1 - m[p]) + col[c] * m[p];
  }
  return fromFloat(x);
}
