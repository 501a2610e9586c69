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

/** The plan along one spatial axis. */
export interface AxisPlan {
  /** Stride of the forward conv (= number of phases). */
  s: number;
  /** Taps of each phase's sub-filter, ceil(k / s). */
  taps: number;
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
    padBefore: taps - 1 - q0,
    padAfter: q1 - outSize,
    outRows: q1 - q0,
    offset: padTop - q0 * s,
  };
}

/**
 * Fills the sub-pixel filter for one (input channel, output channel) pair's filter taps: calls
 * `emit(mh, mw, ph, pw, a, b)` for every sub-filter tap (mh, mw) of phase (ph, pw) that maps to a
 * real filter tap (a, b); taps past the filter are left zero.
 */
export function forEachSubTap(
  kh: number,
  kw: number,
  rows: AxisPlan,
  cols: AxisPlan,
  emit: (mh: number, mw: number, ph: number, pw: number, a: number, b: number) => void,
): void {
  for (let mh = 0; mh < rows.taps; mh++) {
    for (let ph = 0; ph < rows.s; ph++) {
      const a = ph + (rows.taps - 1 - mh) * rows.s;
      if (a >= kh) continue;
      for (let mw = 0; mw < cols.taps; mw++) {
        for (let pw = 0; pw < cols.s; pw++) {
          const b = pw + (cols.taps - 1 - mw) * cols.s;
          if (b >= kw) continue;
          emit(mh, mw, ph, pw, a, b);
        }
      }
    }
  }
}
