/**
 * Digital corruptions: brightness, contrast, elastic_transform, pixelate, jpeg_compression and
 * the extra saturate, with the CIFAR-10-C parameters (make_cifar_c.py).
 */
import sharp from 'sharp';

import {
  borderIndex,
  fromFloat,
  fromFloat32,
  gaussianFilter,
  hsvToRgb,
  mapRgbPixels,
  newFloat,
  newImage,
  rgbToHsv,
  roundHalfEven,
  toFloat,
} from './filters.js';
import type { FloatImage } from './filters.js';
import type { CorruptionRng } from './rng.js';
import type { Image, Severity } from './types.js';

/** Added to the HSV value channel. */
export const BRIGHTNESS = [0.05, 0.1, 0.15, 0.2, 0.3] as const;
/** Factor applied to each channel's deviation from its mean. */
export const CONTRAST = [0.75, 0.5, 0.4, 0.3, 0.15] as const;
/** (factor, offset) applied to the HSV saturation. Not monotone by design: 1-2 desaturate, 3-5 oversaturate. */
export const SATURATE = [
  [0.3, 0],
  [0.1, 0],
  [1.5, 0],
  [2, 0.1],
  [2.5, 0.2],
] as const;
/** JPEG quality. */
export const JPEG_QUALITY = [80, 65, 58, 50, 40] as const;
/** Side of the intermediate image as a fraction of the original side. */
export const PIXELATE = [0.95, 0.9, 0.85, 0.75, 0.65] as const;

/**
 * (alpha, sigma, affine jitter) of the elastic transform, in pixels. They are the CIFAR values,
 * written by the original as fractions of IMSIZE = 32, and used unchanged for every image size
 * (e.g. 28x28): they are absolute pixel amounts, not fractions of the actual size.
 */
const IMSIZE = 32;
export const ELASTIC = [
  [IMSIZE * 0, IMSIZE * 0, IMSIZE * 0.08],
  [IMSIZE * 0.05, IMSIZE * 0.2, IMSIZE * 0.07],
  [IMSIZE * 0.08, IMSIZE * 0.06, IMSIZE * 0.06],
  [IMSIZE * 0.1, IMSIZE * 0.04, IMSIZE * 0.05],
  [IMSIZE * 0.1, IMSIZE * 0.03, IMSIZE * 0.03],
] as const;

/** skimage rgb2hsv, V += c (clipped), hsv2rgb. Grey: through replicated RGB (= x + c, clipped). */
export function brightness(img: Image, severity: Severity): Image {
  const c = BRIGHTNESS[severity - 1];
  const hsv = new Float64Array(3);
  return fromFloat(
    mapRgbPixels(toFloat(img), (px) => {
      rgbToHsv(px[0], px[1], px[2], hsv);
      hsvToRgb(hsv[0], hsv[1], Math.min(1, Math.max(0, hsv[2] + c)), px);
    }),
  );
}

/**
 * skimage rgb2hsv, S = clip(S * a + b), hsv2rgb. A grey pixel has S = 0 and hue 0 (red), so on a
 * grey image severities 1-3 change nothing and 4-5 tint towards red; the grey result is the
 * Rec. 601 luma of that tinted pixel (slightly darker).
 */
export function saturate(img: Image, severity: Severity): Image {
  const [a, b] = SATURATE[severity - 1];
  const hsv = new Float64Array(3);
  return fromFloat(
    mapRgbPixels(toFloat(img), (px) => {
      rgbToHsv(px[0], px[1], px[2], hsv);
      hsvToRgb(hsv[0], Math.min(1, Math.max(0, hsv[1] * a + b)), hsv[2], px);
    }),
  );
}

/** (x - mean) * c + mean, with the mean taken per channel over the image. */
export function contrast(img: Image, severity: Severity): Image {
  const c = CONTRAST[severity - 1];
  const f = toFloat(img);
  const C = f.channels;
  const n = f.height * f.width;
  const means = new Float64Array(C);
  for (let i = 0; i < f.data.length; i++) means[i % C] += f.data[i];
  for (let k = 0; k < C; k++) means[k] /= n;
  for (let i = 0; i < f.data.length; i++) {
    const m = means[i % C];
    f.data[i] = (f.data[i] - m) * c + m;
  }
  return fromFloat(f);
}

// --------------------------------------------------------------------------------------------
// pixelate: PIL's Image.resize with the BOX filter, down then back up.

/**
 * One separable pass of PIL's resampling with the box filter (support 0.5, widened by the scale
 * when shrinking), including PIL's 8-bit fixed point: weights * 2^22 rounded, accumulator
 * started at 2^21, shifted down and clipped.
 */
function boxCoefficients(inSize: number, outSize: number): { start: Int32Array; weights: number[][] } {
  const PRECISION = 22;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 0.5 * filterScale;
  const start = new Int32Array(outSize);
  const weights: number[][] = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const xmin = Math.max(Math.trunc(centre - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const w: number[] = [];
    let total = 0;
    for (let x = xmin; x < xmax; x++) {
      const t = (x - centre + 0.5) / filterScale;
      const v = t > -0.5 && t <= 0.5 ? 1 : 0;
      w.push(v);
      total += v;
    }
    start[o] = xmin;
    weights.push(w.map((v) => Math.trunc(0.5 + (total !== 0 ? v / total : v) * (1 << PRECISION))));
  }
  return { start, weights };
}

function resizeAxis(img: Image, outH: number, outW: number, axis: 0 | 1): Image {
  const { height: H, width: W, channels: C } = img;
  const out = newImage(outH, outW, C);
  const { start, weights } = axis === 1 ? boxCoefficients(W, outW) : boxCoefficients(H, outH);
  const half = 1 << 21;
  const div = 1 << 22;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = axis === 1 ? x : y;
      const w = weights[o];
      for (let c = 0; c < C; c++) {
        let acc = half;
        for (let t = 0; t < w.length; t++) {
          const s = start[o] + t;
          acc += img.data[(axis === 1 ? y * W + s : s * W + x) * C + c] * w[t];
        }
        const v = Math.floor(acc / div);
        out.data[(y * outW + x) * C + c] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return out;
}

/** PIL Image.resize((w, h), Image.BOX): horizontal pass first, then vertical, each rounded to 8 bits. */
export function pilBoxResize(img: Image, outH: number, outW: number): Image {
  let cur = img;
  if (outW !== cur.width) cur = resizeAxis(cur, cur.height, outW, 1);
  if (outH !== cur.height) cur = resizeAxis(cur, outH, outW, 0);
  return cur === img ? { ...img, data: img.data.slice() } : cur;
}

/** Box-shrink to int(side * c), box-enlarge back (which is nearest-neighbour for the box filter). */
export function pixelate(img: Image, severity: Severity): Image {
  const c = PIXELATE[severity - 1];
  // (PIL refuses a zero-size image; we keep at least one pixel for images of 1-2 pixels.)
  const small = pilBoxResize(img, Math.max(1, Math.trunc(img.height * c)), Math.max(1, Math.trunc(img.width * c)));
  return pilBoxResize(small, img.height, img.width);
}

// --------------------------------------------------------------------------------------------
// jpeg_compression: a real JPEG round trip through sharp (libjpeg-compatible encoder).

/**
 * The JPEG file jpeg_compression decodes: baseline, standard quantisation tables scaled to the
 * severity's quality, 4:2:0 chroma for colour (PIL's default), greyscale JPEG for 1 channel.
 */
export async function encodeJpeg(img: Image, severity: Severity): Promise<Buffer> {
  // sharp converts to sRGB on output unless told otherwise: keep grey images single-channel.
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 } })
    .toColourspace(img.channels === 1 ? 'b-w' : 'srgb')
    .jpeg({ quality: JPEG_QUALITY[severity - 1], chromaSubsampling: '4:2:0', mozjpeg: false })
    .toBuffer();
}

export async function jpegCompression(img: Image, severity: Severity): Promise<Image> {
  const jpeg = await encodeJpeg(img, severity);
  const pipeline = sharp(jpeg);
  const { data, info } = await (img.channels === 1 ? pipeline.toColourspace('b-w') : pipeline.toColourspace('srgb'))
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== img.channels || info.width !== img.width || info.height !== img.height) {
    throw new Error(
      `jpeg round trip returned ${info.width}x${info.height}x${info.channels}, expected ${img.width}x${img.height}x${img.channels}`,
    );
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), height: img.height, width: img.width, channels: img.channels };
}

// --------------------------------------------------------------------------------------------
// elastic_transform: random affine (cv2.getAffineTransform + warpAffine) followed by a smooth
// random displacement field (scipy map_coordinates, order 1).

/** cv2.getAffineTransform: the 2x3 matrix [a b c; d e f] mapping three points onto three others. */
export function affineFromPoints(src: number[][], dst: number[][]): number[] {
  // Solve [x y 1] * [a d; b e; c f] = [x' y'] for the three pairs (Cramer's rule on a 3x3).
  const [p0, p1, p2] = src;
  const det = p0[0] * (p1[1] - p2[1]) - p0[1] * (p1[0] - p2[0]) + (p1[0] * p2[1] - p2[0] * p1[1]);
  // Collinear points (only for images under 3 pixels, where the square collapses): no affine part.
  if (det === 0) return [1, 0, 0, 0, 1, 0];
  const solve = (v0: number, v1: number, v2: number): [number, number, number] => {
    const a = (v0 * (p1[1] - p2[1]) - p0[1] * (v1 - v2) + (v1 * p2[1] - v2 * p1[1])) / det;
    const b = (p0[0] * (v1 - v2) - v0 * (p1[0] - p2[0]) + (p1[0] * v2 - p2[0] * v1)) / det;
    const c = (p0[0] * (p1[1] * v2 - p2[1] * v1) - p0[1] * (p1[0] * v2 - p2[0] * v1) + v0 * (p1[0] * p2[1] - p2[0] * p1[1])) / det;
    return [a, b, c];
  };
  const [a, b, c] = solve(dst[0][0], dst[1][0], dst[2][0]);
  const [d, e, f] = solve(dst[0][1], dst[1][1], dst[2][1]);
  return [a, b, c, d, e, f];
}

/** cv2.invertAffineTransform. */
function invertAffine(m: number[]): number[] {
  let D = m[0] * m[4] - m[1] * m[3];
  D = D !== 0 ? 1 / D : 0;
  const a = m[4] * D;
  const b = -m[1] * D;
  const d = -m[3] * D;
  const e = m[0] * D;
  return [a, b, -a * m[2] - b * m[5], d, e, -d * m[2] - e * m[5]];
}

/**
 * cv2.warpAffine(img, M, (W, H), borderMode=BORDER_REFLECT_101) with bilinear interpolation,
 * including OpenCV's fixed-point source coordinates (1/1024 accumulation, 1/32-pixel
 * interpolation steps).
 */
export function warpAffine(f: FloatImage, M: number[]): FloatImage {
  const { height: H, width: W, channels: C } = f;
  const inv = invertAffine(M);
  const AB_BITS = 10;
  const AB_SCALE = 1 << AB_BITS;
  const INTER_BITS = 5;
  const TAB = 1 << INTER_BITS;
  const roundDelta = AB_SCALE / TAB / 2;
  const out = newFloat(H, W, C);
  for (let y = 0; y < H; y++) {
    const X0 = roundHalfEven((inv[1] * y + inv[2]) * AB_SCALE) + roundDelta;
    const Y0 = roundHalfEven((inv[4] * y + inv[5]) * AB_SCALE) + roundDelta;
    for (let x = 0; x < W; x++) {
      const X = (X0 + roundHalfEven(inv[0] * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
      const Y = (Y0 + roundHalfEven(inv[3] * x * AB_SCALE)) >> (AB_BITS - INTER_BITS);
      const sx = X >> INTER_BITS;
      const sy = Y >> INTER_BITS;
      const fx = (X & (TAB - 1)) / TAB;
      const fy = (Y & (TAB - 1)) / TAB;
      const xa = borderIndex(sx, W, 'reflect101');
      const xb = borderIndex(sx + 1, W, 'reflect101');
      const ya = borderIndex(sy, H, 'reflect101');
      const yb = borderIndex(sy + 1, H, 'reflect101');
      const w00 = Math.fround((1 - fy) * (1 - fx));
      const w01 = Math.fround((1 - fy) * fx);
      const w10 = Math.fround(fy * (1 - fx));
      const w11 = Math.fround(fy * fx);
      for (let c = 0; c < C; c++) {
        // float32 arithmetic, as OpenCV's remap of a float32 image.
        const fr = Math.fround;
        out.data[(y * W + x) * C + c] = fr(
          fr(
            fr(fr(w00 * f.data[(ya * W + xa) * C + c]) + fr(w01 * f.data[(ya * W + xb) * C + c])) +
              fr(w10 * f.data[(yb * W + xa) * C + c]),
          ) + fr(w11 * f.data[(yb * W + xb) * C + c]),
        );
      }
    }
  }
  return out;
}

/**
 * scipy.ndimage.map_coordinates(order=1, mode='reflect') at (y + dy, x + dx) for every pixel:
 * bilinear interpolation on the half-sample-symmetric extension of the image (scipy >= 1.6
 * semantics).
 */
function remapReflect(f: FloatImage, dy: Float64Array, dx: Float64Array): FloatImage {
  const { height: H, width: W, channels: C } = f;
  const out = newFloat(H, W, C);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      const cy = y + dy[p];
      const cx = x + dx[p];
      const iy = Math.floor(cy);
      const ix = Math.floor(cx);
      const ty = cy - iy;
      const tx = cx - ix;
      const ya = borderIndex(iy, H, 'reflect');
      const yb = borderIndex(iy + 1, H, 'reflect');
      const xa = borderIndex(ix, W, 'reflect');
      const xb = borderIndex(ix + 1, W, 'reflect');
      for (let c = 0; c < C; c++) {
        const v00 = f.data[(ya * W + xa) * C + c];
        const v01 = f.data[(ya * W + xb) * C + c];
        const v10 = f.data[(yb * W + xa) * C + c];
        const v11 = f.data[(yb * W + xb) * C + c];
        out.data[p * C + c] = (1 - ty) * ((1 - tx) * v00 + tx * v01) + ty * ((1 - tx) * v10 + tx * v11);
      }
    }
  }
  return out;
}

/**
 * Random affine: three points around the centre (centre +- min(H, W) // 3) each moved by
 * U(-jitter, jitter) per coordinate; then displacement fields dx, dy = alpha * gaussian(U(-1, 1),
 * sigma, mode='reflect', truncate=3). The original builds the centre from (H // 2, W // 2) and
 * hands it to OpenCV as (x, y): identical for square images; here x uses W and y uses H.
 */
export function elasticTransform(img: Image, severity: Severity, rng: CorruptionRng): Image {
  const [alpha, sigma, jitter] = ELASTIC[severity - 1];
  const { height: H, width: W } = img;
  const x = toFloat(img);
  for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i]);

  const cx = Math.floor(W / 2);
  const cy = Math.floor(H / 2);
  const s = Math.floor(Math.min(H, W) / 3);
  const pts1 = [
    [cx + s, cy + s],
    [cx + s, cy - s],
    [cx - s, cy - s],
  ];
  // pts1 + uniform(...).astype(float32), a float32 sum.
  const pts2 = pts1.map((p) => p.map((v) => Math.fround(v + Math.fround(rng.uniformRange(-jitter, jitter)))));
  // The original's image is float32 here, and so are OpenCV's and scipy's outputs.
  const warped = warpAffine(x, affineFromPoints(pts1, pts2));
  for (let i = 0; i < warped.data.length; i++) warped.data[i] = Math.fround(warped.data[i]);

  const field = (): Float64Array => {
    const u = newFloat(H, W, 1);
    for (let i = 0; i < u.data.length; i++) u.data[i] = rng.uniformRange(-1, 1);
    const g = gaussianFilter(u, sigma, 'reflect', 3).data;
    for (let i = 0; i < g.length; i++) g[i] = Math.fround(g[i] * alpha);
    return g;
  };
  const dx = field();
  const dy = field();
  return fromFloat32(remapReflect(warped, dy, dx));
}
