/**
 * NHL's soft Hebbian rule for a convolution kernel, as a pure function of the layer's input and
 * its weights: no labels, no loss, no autodiff.
 *
 * The rule is SoftHebb's (Moraitis et al. 2022; Journé et al., ICLR 2023), read from the authors'
 * `hebbconv.py` (`HebbSoftConv2d`: softmax competition over output channels, then the plasticity
 * of its parent class) with the Lebesgue exponent p = 2, no Krotov anti-winner, no bias rule:
 *
 *   u[n,p,k]   = sum_{i,j,c} W[i,j,c,k] * patch[n,p,i,j,c]      (pre-activation, no bias)
 *   y[n,p,:]   = softmax(beta * u[n,p,:])                       (soft winner-take-all over channels)
 *   yx[i,j,c,k] = sum_{n,p} y[n,p,k] * patch[n,p,i,j,c]
 *   yu[k]      = sum_{n,p} y[n,p,k] * u[n,p,k]
 *   dW         = yx - yu[k] * W                                 (Hebb term minus Oja-style decay)
 *   dW        /= max |dW| + 1e-30                               (one scale for the whole kernel)
 *   W         <- W + lr * dW
 *
 * n runs over the batch and p over the output positions; patch[n,p] is the receptive field of
 * output position p (with the layer's padding, stride and dilation). NHL (Tang et al., CVPR 2023)
 * states the soft competitive rule; the exact form above (sums over batch and positions, the
 * max normalisation) is SoftHebb's code, taken as NHL's (an assumption, see ../nhl.ts).
 */
import * as tf from '@tensorflow/tfjs';

/** How a Conv2D layer maps its input to its output (tfjs conventions, NHWC). */
export interface ConvGeometry {
  strides: [number, number];
  dilations: [number, number];
  padding: 'same' | 'valid';
}

/** Output size and leading pad of one spatial axis, as TensorFlow computes them. */
export function axisGeometry(size: number, kernel: number, stride: number, dilation: number, padding: 'same' | 'valid'): { out: number; padBefore: number; padAfter: number } {
  const span = (kernel - 1) * dilation + 1;
  if (padding === 'valid') return { out: Math.max(0, Math.ceil((size - span + 1) / stride)), padBefore: 0, padAfter: 0 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + span - size, 0);
  const padBefore = Math.floor(total / 2);
  return { out, padBefore, padAfter: total - padBefore };
}

/**
 * The receptive fields of every output position for kernel offset (i, j), as an
 * [N * Ho * Wo, Cin] matrix whose rows follow the output positions in NHWC order.
 */
function patchAt(padded: tf.Tensor4D, i: number, j: number, out: [number, number], g: ConvGeometry): tf.Tensor2D {
  const [n, , , c] = padded.shape;
  const r0 = i * g.dilations[0];
  const c0 = j * g.dilations[1];
  const slice = tf.stridedSlice(
    padded,
    [0, r0, c0, 0],
    [n, r0 + (out[0] - 1) * g.strides[0] + 1, c0 + (out[1] - 1) * g.strides[1] + 1, c],
    [1, g.strides[0], g.strides[1], 1],
  );
  return tf.reshape(slice, [-1, c]) as tf.Tensor2D;
}

/**
 * The normalised SoftHebb change dW of `kernel` ([kh, kw, Cin, Cout]) for the layer input `x`
 * ([N, H, W, Cin]), with inverse temperature `beta`. Same shape as the kernel; max |dW| = 1
 * (or all zeros). The caller disposes it.
 */
export function softHebbDelta(x: tf.Tensor4D, kernel: tf.Tensor4D, geometry: ConvGeometry, beta: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, cin, cout] = kernel.shape;
    const { strides, dilations, padding } = geometry;
    // The pre-activation exactly as the network computes it (tf.conv2d, no bias).
    const u = tf.reshape(tf.conv2d(x, kernel, strides, padding, 'NHWC', dilations), [-1, cout]) as tf.Tensor2D;
    const y = tf.softmax(tf.mul(u, beta)) as tf.Tensor2D; // [M, Cout], rows = output positions
    const rows = axisGeometry(x.shape[1], kh, strides[0], dilations[0], padding);
    const cols = axisGeometry(x.shape[2], kw, strides[1], dilations[1], padding);
    const padded = tf.pad(x, [[0, 0], [rows.padBefore, rows.padAfter], [cols.padBefore, cols.padAfter], [0, 0]]);
    // yx one kernel offset at a time, so only one [M, Cin] patch matrix is alive at once.
    const yx: tf.Tensor2D[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        yx.push(tf.tidy(() => tf.matMul(patchAt(padded, i, j, [rows.out, cols.out], geometry), y, true, false)));
      }
    }
    const yu = tf.sum(tf.mul(y, u), 0); // [Cout]
    const delta = tf.sub(tf.reshape(tf.stack(yx), [kh, kw, cin, cout]), tf.mul(yu, kernel));
    const scale = tf.add(tf.max(tf.abs(delta)), 1e-30);
    return tf.div(delta, scale) as tf.Tensor4D;
  });
}

/** One SoftHebb step on `kernel` in place: kernel += lr * softHebbDelta(x, kernel). */
export function softHebbStep(kernel: tf.Variable, x: tf.Tensor4D, geometry: ConvGeometry, beta: number, lr: number): void {
  if (lr === 0) return;
  tf.tidy(() => {
    const delta = softHebbDelta(x, kernel as unknown as tf.Tensor4D, geometry, beta);
    kernel.assign(tf.add(kernel, tf.mul(delta, lr)));
  });
}
