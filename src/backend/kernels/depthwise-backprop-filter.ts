/**
 * `DepthwiseConv2dNativeBackpropFilter` for the wasm backend (missing upstream).
 *
 * dW[a,b,ci,m] = sum over n,i,j of x[n, i*sh + a - top, j*sw + b - left, ci] * dy[n,i,j,ci*M+m].
 *
 * With the batch folded into the channels this is one depthwise convolution: the "image" is x
 * as [1, H, W, N*Ci], the "filter" is dy as [OH, OW, N*Ci, M], the stride is 1 and the dilation
 * the forward stride. The [1, kH, kW, N*Ci*M] result, summed over N, is dW.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { asTensor, cropNegativePad, requireUnitDilation, type KernelBackend } from './util.js';

interface Attrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
  filterShape: [number, number, number, number];
}

export const depthwiseBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { strides, pad, dimRoundingMode, dilations, filterShape } = attrs as unknown as Attrs;
    requireUnitDilation('DepthwiseConv2dNativeBackpropFilter', dilations);
    const be = backend as unknown as KernelBackend;
    const xShape = inputs.x!.shape as [number, number, number, number];
    const [kh, kw, ci, m] = filterShape;
    const info = tf.backend_util.computeConv2DInfo(xShape, [kh, kw, ci, m], strides, 1, pad, dimRoundingMode, true);
    const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
    const [n, h, w] = xShape;
    const dyShape = inputs.dy!.shape;
    if (dyShape[0] !== n || dyShape[1] !== oh || dyShape[2] !== ow || dyShape[3] !== ci * m || xShape[3] !== ci) {
      throw new CttaError(
        `DepthwiseConv2dNativeBackpropFilter: x [${xShape.join(',')}] / dy [${dyShape.join(',')}] do not match filter [${filterShape.join(',')}]`,
        { exitCode: 1 },
      );
    }
    const top = info.padInfo.top;
    const left = info.padInfo.left;
    const bottom = kh + (oh - 1) * sh - top - h;
    const right = kw + (ow - 1) * sw - left - w;
    return tf.tidy(() => {
      const x = asTensor<tf.Rank.R4>(inputs.x!, be);
      const dy = asTensor<tf.Rank.R4>(inputs.dy!, be);
      const xT = tf.reshape<tf.Rank.R4>(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * ci]);
      const dyT = tf.reshape<tf.Rank.R4>(tf.transpose(dy, [1, 2, 0, 3]), [oh, ow, n * ci, m]);
      const { x: xIn, pad: explicit } = cropNegativePad(xT, { top, bottom, left, right });
      const out = tf.depthwiseConv2d(xIn, dyT, 1, explicit, 'NHWC', [sh, sw]); // [1, kh, kw, N*Ci*M]
      const perBatch = tf.reshape(out, [kh * kw, n, ci * m]);
      return tf.reshape(tf.sum(perBatch, 1), [kh, kw, ci, m]);
    });
  },
};
