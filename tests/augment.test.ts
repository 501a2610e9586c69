import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { adjustContrast, adjustGamma, adjustHue, adjustSaturation } from '../src/augment/color.js';
import { applyCottaView, cottaAugment, drawCottaView } from '../src/augment/cotta.js';
import { affine, centerCrop, gaussianBlur, gaussianTaps, padEdge } from '../src/augment/geometry.js';
import { Rng } from '../src/util/rng.js';
import { maxAbsDiff, useWasm } from './helpers.js';

beforeAll(useWasm);

const ramp = (h: number, w: number, c = 1) =>
  tf.tensor4d(Array.from({ length: h * w * c }, (_, i) => (i % 97) / 97), [1, h, w, c]);

describe('augmentation steps', () => {
  it('affine: identity leaves the image, 90 degrees is a counter-clockwise quarter turn', () => {
    const x = ramp(5, 5);
    const same = affine(x, { angle: 0, tx: 0, ty: 0, scale: 1 });
    expect(maxAbsDiff(same, x)).toBeLessThan(1e-6);
    // Counter-clockwise: out[i][j] = in[j][W-1-i] (numpy's rot90).
    const turned = affine(x, { angle: 90, tx: 0, ty: 0, scale: 1 });
    const expected = tf.tidy(() => tf.transpose(tf.reverse(x, 2), [0, 2, 1, 3]));
    expect(maxAbsDiff(turned, expected)).toBeLessThan(1e-5);
    // A shift by one pixel to the right moves column j to j+1 and fills column 0 with zeros.
    const shifted = affine(x, { angle: 0, tx: 1, ty: 0, scale: 1 });
    expect(maxAbsDiff(shifted.slice([0, 0, 1, 0], [1, 5, 4, 1]), x.slice([0, 0, 0, 0], [1, 5, 4, 1]))).toBeLessThan(1e-6);
    expect(tf.max(shifted.slice([0, 0, 0, 0], [1, 5, 1, 1])).dataSync()[0]).toBe(0);
    tf.dispose([x, same, turned, expected, shifted]);
  });

  it('padEdge repeats the border pixels', () => {
    const x = ramp(3, 4);
    const p = padEdge(x, 2);
    expect(p.shape).toEqual([1, 7, 8, 1]);
    const v = p.arraySync()[0]!;
    const o = x.arraySync()[0]!;
    expect(v[0]![0]![0]).toBe(o[0]![0]![0]);
    expect(v[6]![7]![0]).toBe(o[2]![3]![0]);
    expect(v[3]![0]![0]).toBe(o[1]![0]![0]);
    tf.dispose([x, p]);
  });

  it('gaussian blur: taps sum to 1, constant images are unchanged, tiny sigma is the identity', () => {
    expect(gaussianTaps(5, 0.5).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    const flat = tf.fill([2, 6, 6, 3], 0.4) as tf.Tensor4D;
    const b = gaussianBlur(flat, 5, 0.5);
    expect(maxAbsDiff(b, flat)).toBeLessThan(1e-6);
    const x = ramp(6, 6, 3);
    const sharp = gaussianBlur(x, 5, 0.001);
    expect(maxAbsDiff(sharp, x)).toBeLessThan(1e-6);
    const soft = gaussianBlur(x, 5, 0.5);
    expect(maxAbsDiff(soft, x)).toBeGreaterThan(1e-2);
    tf.dispose([flat, b, x, sharp, soft]);
  });

  it('colour: hue by a third of a turn maps red to green, full turns and greyscale are unchanged', () => {
    const red = tf.tensor4d([1, 0, 0, 0.5, 0.25, 0.125], [1, 1, 2, 3]);
    const green = adjustHue(red, 1 / 3);
    expect(Array.from(green.dataSync().slice(0, 3)).map((v) => Math.round(v * 1e5) / 1e5)).toEqual([0, 1, 0]);
    const round = adjustHue(red, 0.5);
    const back = adjustHue(round, 0.5);
    expect(maxAbsDiff(back, red)).toBeLessThan(1e-5);
    const gray = ramp(4, 4);
    const g1 = adjustHue(gray, 0.05);
    const g2 = adjustSaturation(gray, 1.4);
    expect(maxAbsDiff(g1, gray)).toBe(0);
    expect(maxAbsDiff(g2, gray)).toBe(0);
    // Contrast 0 gives the mean grey level everywhere; gamma 1 is the identity.
    const flat = adjustContrast(gray, 0);
    expect(maxAbsDiff(flat, tf.fill([1, 4, 4, 1], tf.mean(gray).dataSync()[0]!))).toBeLessThan(1e-6);
    const same = adjustGamma(gray, 1);
    expect(maxAbsDiff(same, gray)).toBeLessThan(1e-6);
    tf.dispose([red, green, round, back, gray, g1, g2, flat, same]);
  });
});

describe('cottaAugment', () => {
  it('equals the authors\' order (edge pad, affine with zero fill, reflect blur, centre crop) on the crop', () => {
    const x = tf.tidy(() => tf.image.resizeBilinear(tf.randomUniform([2, 5, 5, 1], 0, 1, 'float32', 4) as tf.Tensor4D, [28, 28]));
    const rng = Rng.derive(7, 'reference');
    for (let view = 0; view < 6; view++) {
      const v = { ...drawCottaView(rng, 28, 28), noiseStd: 0, flip: false };
      const fast = applyCottaView(x, v);
      const reference = tf.tidy(() => {
        let y: tf.Tensor4D = x;
        for (const j of v.jitter) y = ({ brightness: (t: tf.Tensor4D) => tf.clipByValue(tf.mul(t, j.value), 0, 1), contrast: (t: tf.Tensor4D) => adjustContrast(t, j.value), saturation: (t: tf.Tensor4D) => t, hue: (t: tf.Tensor4D) => t, gamma: (t: tf.Tensor4D) => adjustGamma(t, j.value) } as Record<string, (t: tf.Tensor4D) => tf.Tensor>)[j.op]!(y) as tf.Tensor4D;
        return centerCrop(gaussianBlur(affine(padEdge(y, 14), v.geometry), 5, v.blurSigma), 28, 28);
      });
      expect(maxAbsDiff(fast, reference)).toBeLessThan(1e-4);
      tf.dispose([fast, reference]);
    }
    x.dispose();
  });

  it('is reproducible from the rng, differs between views, stays in [0, 1], and frees its tensors', () => {
    // A smooth image (white noise would decorrelate under any shift).
    const x = tf.tidy(() => tf.image.resizeBilinear(tf.randomUniform([4, 4, 4, 1], 0, 1, 'float32', 1) as tf.Tensor4D, [28, 28]));
    const before = tf.memory().numTensors;
    const a = cottaAugment(x, Rng.derive(3, 'aug'));
    const b = cottaAugment(x, Rng.derive(3, 'aug'));
    const rng = Rng.derive(3, 'aug');
    const v1 = cottaAugment(x, rng);
    const v2 = cottaAugment(x, rng);
    expect(tf.memory().numTensors).toBe(before + 4);
    expect(a.shape).toEqual(x.shape);
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(maxAbsDiff(v1, v2)).toBeGreaterThan(0.05);
    expect(tf.min(a).dataSync()[0]).toBeGreaterThanOrEqual(0);
    expect(tf.max(a).dataSync()[0]).toBeLessThanOrEqual(1);
    // A mild transform: the view stays correlated with the original image.
    const corr = tf.tidy(() => {
      const da = tf.sub(a, tf.mean(a));
      const dx = tf.sub(x, tf.mean(x));
      return tf.div(tf.sum(tf.mul(da, dx)), tf.sqrt(tf.mul(tf.sum(tf.square(da)), tf.sum(tf.square(dx))))).dataSync()[0]!;
    });
    expect(corr).toBeGreaterThan(0.2);
    tf.dispose([x, a, b, v1, v2]);
  });
});
