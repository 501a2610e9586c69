/**
 * `Conv2DBackpropInput` for the wasm backend, replacing the stock kernel (a naive C++ loop that
 * dominates a TENT step) with one XNNPACK convolution in sub-pixel form (see ./subpixel.ts):
 * dy, padded, convolved at stride 1 with a [Th, Tw, Co, phases*Ci] filter built from W, then
 * the phases interleaved (depth-to-space) and cropped to the input size.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { forEachSubTap, interleavePhases, planAxis, type AxisPlan } from './subpixel.js';
import { asTensor, cropNegativePad, isChannelsFirst, readFloat32, type KernelBackend } from './util.js';

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

/** The [Th, Tw, Co, pH*pW*Ci] sub-pixel filter of a [kh, kw, Ci, Co] conv filter. */
function subPixelFilter(w: Float32Array, shape: number[], rows: AxisPlan, cols: AxisPlan): tf.Tensor4D {
  const [kh, kw, ci, co] = shape as [number, number, number, number];
  const outCh = rows.phases * cols.phases * ci;
  const g = new Float32Array(rows.taps * cols.taps * co * outCh);
  forEachSubTap(kh, kw, rows, cols, (mh, mw, ph, pw, a, b) => {
    const src = (a * kw + b) * ci * co;
    const dstTap = (mh * cols.taps + mw) * co * outCh + (ph * cols.phases + pw) * ci;
    for (let o = 0; o < co; o++) {
      const dst = dstTap + o * outCh;
      for (let i = 0; i < ci; i++) g[dst + i] = w[src + i * co + o]!;
    }
  });
  return tf.tensor4d(g, [rows.taps, cols.taps, co, outCh]);
}

export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as Attrs;
    const be = backend as unknown as KernelBackend;
    const filterInfo = inputs.filter!;
    const channelsFirst = isChannelsFirst(dataFormat);
    const info = tf.backend_util.computeConv2DInfo(
      [...inputShape] as [number, number, number, number],
      filterInfo.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      channelsFirst ? 'channelsFirst' : 'channelsLast',
    );
    const { filterHeight: kh, filterWidth: kw, inHeight, inWidth, outHeight, outWidth } = info;
    const dyShape = inputs.dy!.shape;
    const dyH = channelsFirst ? dyShape[2] : dyShape[1];
    const dyW = channelsFirst ? dyShape[3] : dyShape[2];
    if (dyH !== outHeight || dyW !== outWidth) {
      throw new CttaError(
        `Conv2DBackpropInput: dy shape [${dyShape.join(',')}] does not match the forward output ${outHeight}x${outWidth}`,
        { exitCode: 1 },
      );
    }
    const rows = planAxis(kh, info.strideHeight, info.padInfo.top, inHeight, outHeight);
    const cols = planAxis(kw, info.strideWidth, info.padInfo.left, inWidth, outWidth);
    const w = readFloat32(filterInfo, be);
    return tf.tidy(() => {
      let dy = asTensor<tf.Rank.R4>(inputs.dy!, be);
      if (channelsFirst) dy = tf.transpose(dy, [0, 2, 3, 1]);
      const g = subPixelFilter(w, filterInfo.shape, rows, cols);
      const { x: dyIn, pad: explicit } = cropNegativePad(dy, {
        top: rows.padBefore,
        bottom: rows.padAfter,
        left: cols.padBefore,
        right: cols.padAfter,
      });
      const y = tf.conv2d(dyIn, g, 1, explicit, 'NHWC');
      const dx = interleavePhases(y, rows, cols, inHeight, inWidth, 'phase-major');
      return channelsFirst ? tf.transpose(dx, [0, 3, 1, 2]) : dx;
    });
  },
};
