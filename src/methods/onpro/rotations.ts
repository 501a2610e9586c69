/**
 * OCM's 16 "rotation" variants of an image (Guo et al., ICML 2022; `Rotation` / `rot_inner_all`
 * in OCM's `test_cifar10.py` and OnPro's `utils/rotation_transform.py`), which its instance loss
 * treats as 16 distinct classes: variant r of an image of class y gets label y + K r.
 *
 * What the code does (the paper's "4 rotations x 4 half-image swaps" is loose): the image is cut
 * into its left and right halves (along the width), and the four half-variants are
 *   h = 0: unchanged,  h = 1: left half turned 180 degrees,  h = 2: both halves turned 180,
 *   h = 3: right half turned 180
 * (each half turned in place, about its own centre). Each of those is then turned by a quarter
 * turn q, taken in the order [0, 180, 90, 270] degrees counter-clockwise (torch.rot90 with k = 0,
 * 2, 1, 3 over (H, W)). Variant r = 4 q + h, and the batch is variant-major: rows
 * [r N, (r + 1) N) are variant r of the N input images. (Both halves turned and then the whole
 * image turned 180 degrees, r = 6, is the image with its halves swapped.)
 *
 * `rotations: 1` is the reduced setting (no variants: the identity, labels y), about 7 times less
 * work per step for OnPro (METHODS.md).
 */
import * as tf from '@tensorflow/tfjs';

/** 16: OCM / OnPro's variants; 1: none. */
export type RotationCount = 1 | 16;

function checkRotations(rotations: number): asserts rotations is RotationCount {
  if (rotations !== 1 && rotations !== 16) throw new RangeError(`rotations must be 1 or 16, got ${rotations}`);
}

/** A 180-degree turn of every image of an NHWC batch. */
function turn180(x: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(x, [1, 2]);
}

/** torch.rot90(x, k, (H, W)) on NHWC: k quarter turns counter-clockwise. */
function quarterTurns(x: tf.Tensor4D, k: 0 | 1 | 2 | 3): tf.Tensor4D {
  if (k === 0) return x;
  if (k === 2) return turn180(x);
  // torch: k = 1 flips W then swaps H and W; k = 3 flips H then swaps.
  return tf.transpose(tf.reverse(x, k === 1 ? 2 : 1), [0, 2, 1, 3]);
}

/** The quarter turns of blocks q = 0..3, in the authors' concatenation order. */
const QUARTER_ORDER = [0, 2, 1, 3] as const;

/**
 * The `rotations` variants of an NHWC batch x [N, H, W, C], variant-major ([rotations N, H, W, C],
 * rows r N .. r N + N - 1 are variant r), and `variant[row]` = r. With 16 the images must be
 * square with an even width (a quarter turn must keep the shape, and the halves are W/2 wide).
 * Always a new tensor (with 1, a copy), so the caller disposes it either way.
 */
export function rotationVariants(x: tf.Tensor4D, rotations: RotationCount): { images: tf.Tensor4D; variant: Int32Array } {
  checkRotations(rotations);
  const [n, h, w] = x.shape;
  if (rotations === 1) return { images: tf.clone(x), variant: new Int32Array(n) };
  if (h !== w || w % 2 !== 0) throw new RangeError(`rotationVariants: 16 variants need square images of even size, got ${h} x ${w}`);
  const images = tf.tidy(() => {
    const half = w / 2;
    const left = tf.slice(x, [0, 0, 0, 0], [-1, -1, half, -1]);
    const right = tf.slice(x, [0, 0, half, 0], [-1, -1, half, -1]);
    const leftTurned = turn180(left);
    const rightTurned = turn180(right);
    const halves = tf.concat([
      x,
      tf.concat([leftTurned, right], 2),
      tf.concat([leftTurned, rightTurned], 2),
      tf.concat([left, rightTurned], 2),
    ]) as tf.Tensor4D;
    return tf.concat(QUARTER_ORDER.map((k) => quarterTurns(halves, k))) as tf.Tensor4D;
  });
  const variant = new Int32Array(16 * n);
  for (let r = 0; r < 16; r++) variant.fill(r, r * n, (r + 1) * n);
  return { images, variant };
}

/**
 * The instance-loss labels of `rotationVariants(x, rotations)` for images labelled `labels`
 * (length N) with K = `numClasses`: row r N + i gets labels[i] + K r, so every variant of every
 * class is its own class (the authors' `y + oop_base * i` with oop_base = K).
 */
export function rotationLabels(labels: ArrayLike<number>, numClasses: number, rotations: RotationCount): Int32Array {
  checkRotations(rotations);
  if (!Number.isSafeInteger(numClasses) || numClasses < 1) throw new RangeError(`rotationLabels: numClasses must be a positive integer, got ${numClasses}`);
  const n = labels.length;
  const out = new Int32Array(rotations * n);
  for (let r = 0; r < rotations; r++) for (let i = 0; i < n; i++) out[r * n + i] = labels[i]! + numClasses * r;
  return out;
}
