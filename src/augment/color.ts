/**
 * Colour adjustments on float NHWC batches in [0, 1], one factor for the whole batch, with the
 * semantics of torchvision's functional transforms (which CoTTA's ColorJitterPro calls): every
 * adjustment blends with a reference image and clamps to [0, 1]. Greyscale (1-channel) images
 * are unchanged by saturation and hue, as in torchvision.
 */
import * as tf from '@tensorflow/tfjs';

/** ITU-R 601 luma, the weights torchvision's rgb_to_grayscale uses. */
function grayscale(x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] === 1) return x;
  return tf.sum(tf.mul(x, tf.tensor1d([0.2989, 0.587, 0.114])), 3, true) as tf.Tensor4D;
}

function blend(a: tf.Tensor, b: tf.Tensor, ratio: number): tf.Tensor4D {
  return tf.clipByValue(tf.add(tf.mul(a, ratio), tf.mul(b, 1 - ratio)), 0, 1) as tf.Tensor4D;
}

export function adjustBrightness(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(tf.mul(x, factor), 0, 1) as tf.Tensor4D);
}

/** Blend with each image's mean grey level. */
export function adjustContrast(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  return tf.tidy(() => blend(x, tf.mean(grayscale(x), [1, 2, 3], true), factor));
}

export function adjustSaturation(x: tf.Tensor4D, factor: number): tf.Tensor4D {
  if (x.shape[3] === 1) return tf.clone(x);
  return tf.tidy(() => blend(x, grayscale(x), factor));
}

/** Gamma curve `x^gamma` (gain 1). */
export function adjustGamma(x: tf.Tensor4D, gamma: number): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(tf.pow(x, gamma), 0, 1) as tf.Tensor4D);
}

/** Rotates hue by `shift` turns (in [-0.5, 0.5]) through HSV, like torchvision's adjust_hue. */
export function adjustHue(x: tf.Tensor4D, shift: number): tf.Tensor4D {
  if (x.shape[3] === 1) return tf.clone(x);
  return tf.tidy(() => {
    const [r, g, b] = tf.split(x, 3, 3) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const max = tf.maximum(tf.maximum(r, g), b);
    const min = tf.minimum(tf.minimum(r, g), b);
    const chroma = tf.sub(max, min);
    const safe = tf.where(tf.equal(chroma, 0), tf.onesLike(chroma), chroma);
    const s = tf.div(chroma, tf.where(tf.equal(max, 0), tf.onesLike(max), max));
    // Hue in [0, 1): which sector depends on which channel is the maximum.
    const hr = tf.div(tf.sub(g, b), safe);
    const hg = tf.add(tf.div(tf.sub(b, r), safe), 2);
    const hb = tf.add(tf.div(tf.sub(r, g), safe), 4);
    let h = tf.where(tf.equal(max, r), hr, tf.where(tf.equal(max, g), hg, hb));
    h = tf.where(tf.equal(chroma, 0), tf.zerosLike(h), h);
    h = tf.div(h, 6);
    h = tf.mod(tf.add(tf.add(h, shift), 2), 1);
    // HSV -> RGB: f(n) = v - v s max(0, min(k, 4 - k, 1)), k = (n + 6h) mod 6.
    const channel = (n: number) => {
      const k = tf.mod(tf.add(tf.mul(h, 6), n), 6);
      const w = tf.clipByValue(tf.minimum(k, tf.sub(4, k)), 0, 1);
      return tf.sub(max, tf.mul(tf.mul(max, s), w));
    };
    return tf.clipByValue(tf.concat([channel(5), channel(3), channel(1)], 3), 0, 1) as tf.Tensor4D;
  });
}
