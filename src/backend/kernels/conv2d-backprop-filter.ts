/**
 * `Conv2DBackpropFilter` for the wasm backend (missing upstream), as ONE XNNPACK convolution.
 *
 * dW[a,b,ci,co] = sum over n,i,j of x[n, i*sh + a - top, j*sw + b - left, ci] * dy[n,i,j,co].
 *
 * Read with the batch as the channel axis this is itself a convolution: the "image" is x
 * transposed to [Ci, H, W, N] (batch Ci, channels N), the "filter" is dy transposed to
 * [OH, OW, N, Co], the stride is 1 and the dilation is the forward stride. Its output,
 * [Ci, kH, kW, Co], transposed back is dW. The padding is the forward conv's top/left padding;
 * the bottom/right padding is whatever makes the output exactly kH x kW (negative when the
 * forward conv never reads the last rows, which are then cropped).
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { asTensor, cropNegativePad, isChannelsFirst, type KernelBackend } from './util.js';

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

/**
 * dW for a conv2d (dilation 1) of `x` whose output gradient is `dy`, both NHWC, or both NCHW
 * when `channelsFirst` (they are then transposed to NHWC first).
 */
export function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: Attrs['pad'],
  dimRoundingMode?: Attrs['dimRoundingMode'],
  channelsFirst = false,
): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(
    x.shape,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    channelsFirst ? 'channelsFirst' : 'channelsLast',
  );
  if (channelsFirst) {
    x = tf.transpose(x, [0, 2, 3, 1]);
    dy = tf.transpose(dy, [0, 2, 3, 1]);
  }
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const [n, h, w] = x.shape;
  if (dy.shape[0] !== n || dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== filterShape[3]) {
    throw new CttaError(
      `Conv2DBackpropFilter: dy shape [${dy.shape.join(',')}] does not match the forward output [${n},${oh},${ow},${filterShape[3]}]`,
      { exitCode: 1 },
    );
  }
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // Last input row read by tap kh-1 at output row oh-1 is kh-1 + (oh-1)*sh - top.
  const bottom = kh + (oh - 1) * sh - top - h;
  const right = kw + (ow - 1) * sw - left - w;

  const xT = tf.transpose(x, [3, 1, 2, 0]); // [Ci, H, W, N]
  const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, N, Co]
  const { x: xIn, pad: explicit } = cropNegativePad(xT, { top, bottom, left, right });
  const out = tf.conv2d(xIn, dyT, 1, explicit, 'NHWC', [sh, sw]); // [Ci, kH, kW, Co]
  return tf.transpose(out, [1, 2, 0, 3]);
}

export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Attrs;
    const be = backend as unknown as KernelBackend;
    return tf.tidy(() => {
      const x = asTensor<tf.Rank.R4>(inputs.x!, be);
      const dy = asTensor<tf.Rank.R4>(inputs.dy!, be);
      const fs = [...filterShape] as [number, number, number, number];
      return conv2dFilterGrad(x, dy, fs, strides, pad, dimRoundingMode, isChannelsFirst(dataFormat));
    });
  },
};
