/**
 * Geometry of the "sub-pixel" form of a strided transposed convolution (the input gradient of a
 * conv2d), shared by the dense and the depthwise input-gradient kernels.
 *
 * Along one spatial axis, with filter size k, stride s, top padding P, input size H and output
 * size OH, the input gradient is
 *
 *   dx[h] = sum over (i, a) with i*s + a - P = h of dy[i] * W[a].
 *
 * Writing h + P = q*s + r (phase r in [0, s)), the taps that reach phase r are a = r + m*s, with
 * dy row i = q - m. So every phase is an ordinary stride-1 correlation of dy with the sub-filter
 * G_r[m'] = W[r + (T-1-m')*s] (T = ceil(k/s) taps, zero where the index passes k), applied to dy
 * padded by T-1 rows on top. All s phases (s*s in 2-D) are computed by ONE convolution whose
 * output channels are (phase, channel); interleaving the phases (depth-to-space) and cropping
 * gives dx. Unlike convolving a zero-dilated dy, no multiplication by an inserted zero is done
 * (only the zero taps that pad k up to T*s).
 */
import * as tf from '@tensorflow/tfjs';

/** The plan along one spatial axis. */
export interface AxisPlan {
  /** Stride of the forward conv (= number of phases). */
  s: number;
  /** Taps of each phase's sub-filter, ceil(k / s). */
  taps: number;
  /**
   * Phases that receive any tap: min(s, k). When k < s (e.g. a 1x1 filter at stride 2) the
   * other phases are all zero; they are left out of the conv and filled in as padding.
   */
  phases: number;
  /** Padding of dy before the stride-1 conv (negative: crop that many rows). */
  padBefore: number;
  padAfter: number;
  /** Rows of the conv output (before interleaving the phases). */
  outRows: number;
  /** First row of the interleaved result that is dx row 0. */
  offset: number;
}

/**
 * @param k filter size, @param s stride, @param padTop forward padding before the axis,
 * @param inSize forward input size (dx rows), @param outSize forward output size (dy rows).
 */
export function planAxis(k: number, s: number, padTop: number, inSize: number, outSize: number): AxisPlan {
  const taps = Math.ceil(k / s);
  // Output blocks q with q*s + r in [padTop, padTop + inSize): q in [q0, q1).
  const q0 = Math.floor(padTop / s);
  const q1 = Math.ceil((padTop + inSize) / s);
  return {
    s,
    taps,
    phases: Math.min(s, k),
    padBefore: taps - 1 - q0,
    padAfter: q1 - outSize,
    outRows: q1 - q0,
    offset: padTop - q0 * s,
  };
}

/**
 * Walks the sub-pixel filter: calls `emit(mh, mw, ph, pw, a, b)` for every sub-filter tap
 * (mh, mw) of phase (ph, pw) (ph < rows.phases, pw < cols.phases) that maps to a real filter tap
 * (a, b); taps past the filter stay zero.
 */
export function forEachSubTap(
  kh: number,
  kw: number,
  rows: AxisPlan,
  cols: AxisPlan,
  emit: (mh: number, mw: number, ph: number, pw: number, a: number, b: number) => void,
): void {
  for (let mh = 0; mh < rows.taps; mh++) {
    for (let ph = 0; ph < rows.phases; ph++) {
      const a = ph + (rows.taps - 1 - mh) * rows.s;
      if (a >= kh) continue;
      for (let mw = 0; mw < cols.taps; mw++) {
        for (let pw = 0; pw < cols.phases; pw++) {
          const b = pw + (cols.taps - 1 - mw) * cols.s;
          if (b >= kw) continue;
          emit(mh, mw, ph, pw, a, b);
        }
      }
    }
  }
}

/**
 * Interleaves the phases of a [N, U, V, pH*pW*C] conv output (pH = rows.phases,
 * pW = cols.phases) into [N, U*sh, V*sw, C] (absent phases are zero) and crops the
 * [N, outH, outW, C] window that is dx. `layout` says how the channel index is composed:
 * 'phase-major' = (ph*pW + pw)*C + c, 'channel-major' = (c*pH + ph)*pW + pw.
 */
export function interleavePhases(
  y: tf.Tensor4D,
  rows: AxisPlan,
  cols: AxisPlan,
  outH: number,
  outW: number,
  layout: 'phase-major' | 'channel-major',
): tf.Tensor4D {
  const [n, u, v, ch] = y.shape;
  const pH = rows.phases;
  const pW = cols.phases;
  const c = ch / (pH * pW);
  let z: tf.Tensor4D;
  if (rows.s === 1 && cols.s === 1) {
    z = y;
  } else {
    // (For sh === sw and all phases present tf.depthToSpace does this, but the wasm one is ~30x
    // slower than a transpose.)
    const t =
      layout === 'phase-major'
        ? tf.transpose(tf.reshape(y, [n, u, v, pH, pW, c]), [0, 1, 3, 2, 4, 5])
        : tf.transpose(tf.reshape(y, [n, u, v, c, pH, pW]), [0, 1, 4, 2, 5, 3]);
    if (pH === rows.s && pW === cols.s) {
      z = tf.reshape(t, [n, u * rows.s, v * cols.s, c]);
    } else {
      const t4 = tf.reshape(t, [n * u, pH, v, pW * c]);
      const padded = tf.pad(t4, [
        [0, 0],
        [0, rows.s - pH],
        [0, 0],
        [0, (cols.s - pW) * c],
      ]);
      z = tf.reshape(padded, [n, u * rows.s, v * cols.s, c]);
    }
  }
  if (rows.offset === 0 && cols.offset === 0 && z.shape[1] === outH && z.shape[2] === outW) return z;
  return tf.slice(z, [0, rows.offset, cols.offset, 0], [n, outH, outW, c]);
}
