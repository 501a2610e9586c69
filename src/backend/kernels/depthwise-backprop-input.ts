/**
 * `DepthwiseConv2dNativeBackpropInput` for the wasm backend (missing upstream).
 *
 * The sub-pixel form of ./subpixel.ts with a depthwise convolution: every dy channel
 * c = ci*M + m is convolved at stride 1 with its own [Th, Tw] sub-filters, one per phase (the
 * depthwise channel multiplier is the number of phases). The M outputs of one input channel are
 * summed, and the phases interleaved and cropped to the input size.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { forEachSubTap, interleavePhases, planAxis, type AxisPlan } from './subpixel.js';
import { asTensor, cropNegativePad, readFloat32, requireUnitDilation, type KernelBackend } from './util.js';

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
  inputShape: [number, number, number, number];
}

/** The [Th, Tw, Ci*M, pH*pW] depthwise sub-pixel filter of a [kh, kw, Ci, M] depthwise filter. */
function subPixelDepthwiseFilter(w: Float32Array, shape: number[], rows: AxisPlan, cols: AxisPlan): tf.Tensor4D {
  const [kh, kw, ci, m] = shape as [number, number, number, number];
  const channels = ci * m;
  const phases = rows.phases * cols.phases;
  const g = new Float32Array(rows.taps * cols.taps * channels * phases);
  forEachSubTap(kh, kw, rows, cols, (mh, mw, ph, pw, a, b) => {
    const src = (a * kw + b) * channels;
    const dst = (mh * cols.taps + mw) * channels * phases + ph * cols.phases + pw;
    for (let c = 0; c < channels; c++) g[dst + c * phases] = w[src + c]!;
  });
  return tf.tensor4d(g, [rows.taps, cols.taps, channels, phases]);
}

export const depthwiseBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { strides, pad, dimRoundingMode, dilations, inputShape } = attrs as unknown as Attrs;
    requireUnitDilation('DepthwiseConv2dNativeBackpropInput', dilations);
    const be = backend as unknown as KernelBackend;
    const filterInfo = inputs.filter!;
    const [, , ci, m] = filterInfo.shape as [number, number, number, number];
    const info = tf.backend_util.computeConv2DInfo(
      [...inputShape] as [number, number, number, number],
      filterInfo.shape as [number, number, number, number],
      strides,
      1,
      pad,
      dimRoundingMode,
      true,
    );
    const { filterHeight: kh, filterWidth: kw, batchSize, inHeight, inWidth, outHeight, outWidth } = info;
    const dyShape = inputs.dy!.shape;
    if (dyShape[0] !== batchSize || dyShape[1] !== outHeight || dyShape[2] !== outWidth || dyShape[3] !== ci * m) {
      throw new CttaError(
        `DepthwiseConv2dNativeBackpropInput: dy shape [${dyShape.join(',')}] does not match the forward output [${batchSize},${outHeight},${outWidth},${ci * m}]`,
        { exitCode: 1 },
      );
    }
    const rows = planAxis(kh, info.strideHeight, info.padInfo.top, inHeight, outHeight);
    const cols = planAxis(kw, info.strideWidth, info.padInfo.left, inWidth, outWidth);
    const w = readFloat32(filterInfo, be);
    return tf.tidy(() => {
      const dy = asTensor<tf.Rank.R4>(inputs.dy!, be);
      const g = subPixelDepthwiseFilter(w, filterInfo.shape, rows, cols);
      const { x: dyIn, pad: explicit } = cropNegativePad(dy, {
        top: rows.padBefore,
        bottom: rows.padAfter,
        left: cols.padBefore,
        right: cols.padAfter,
      });
      let y = tf.depthwiseConv2d(dyIn, g, 1, explicit, 'NHWC'); // channel (ci*M + m)*P + p
      if (m > 1) {
        const [n, u, v] = y.shape;
        const phases = rows.phases * cols.phases;
        y = tf.reshape(tf.sum(tf.reshape(y, [n * u * v * ci, m, phases]), 1), [n, u, v, ci * phases]);
      }
      return interleavePhases(y, rows, cols, inHeight, inWidth, 'channel-major');
    });
  },
};
