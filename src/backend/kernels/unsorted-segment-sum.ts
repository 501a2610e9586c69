/**
 * `UnsortedSegmentSum` for the wasm backend (missing upstream; the gradient of tf.gather, used
 * e.g. by AdamW-style updates, needs it).
 *
 * out[s, ...] = sum of x[p, ...] over the p with segmentIds[p] = s. `segmentIds` is a prefix of
 * x's shape (usually 1-D, length x.shape[0]); ids outside [0, numSegments) are dropped, as in
 * TensorFlow. Done with one ScatterNd (which adds duplicate indices): invalid ids are routed to
 * an extra row numSegments that is cut off afterwards.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { asTensor, type KernelBackend } from './util.js';

interface Attrs {
  numSegments: number;
}

export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { numSegments } = attrs as unknown as Attrs;
    const be = backend as unknown as KernelBackend;
    const xShape = inputs.x!.shape;
    const idShape = inputs.segmentIds!.shape;
    if (idShape.length > xShape.length || idShape.some((d, i) => d !== xShape[i])) {
      throw new CttaError(
        `UnsortedSegmentSum: segmentIds shape [${idShape.join(',')}] is not a prefix of x shape [${xShape.join(',')}]`,
        { exitCode: 1 },
      );
    }
    const rest = xShape.slice(idShape.length);
    const outShape = [numSegments, ...rest];
    return tf.tidy(() => {
      const x = asTensor(inputs.x!, be);
      const ids = asTensor(inputs.segmentIds!, be);
      const count = idShape.reduce((a, b) => a * b, 1);
      if (count === 0 || numSegments === 0) return tf.zeros(outShape, x.dtype);
      const flatIds = tf.reshape(tf.cast(ids, 'int32'), [count]);
      const valid = tf.logicalAnd(tf.greaterEqual(flatIds, 0), tf.less(flatIds, numSegments));
      const routed = tf.where(valid, flatIds, tf.fill([count], numSegments, 'int32'));
      const updates = tf.reshape(x, [count, ...rest]);
      const summed = tf.scatterND(tf.reshape(routed, [count, 1]), updates, [numSegments + 1, ...rest]);
      return tf.slice(summed, 0, numSegments);
    });
  },
};
