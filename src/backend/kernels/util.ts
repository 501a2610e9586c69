/**
 * Helpers shared by the composed wasm kernels in this folder.
 *
 * The kernels are written with ordinary tf ops (which run on the wasm backend's own, fast
 * kernels: XNNPACK convolutions, transposes, pads). Inside a kernelFunc the engine does not
 * record nested ops on the gradient tape, so composing is safe; every kernel wraps its body in
 * `tf.tidy` and returns a single tf.Tensor, which the engine accepts as the kernel output.
 */
import * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';

/** The parts of a kernel backend these kernels use (BackendWasm has all of them). */
export interface KernelBackend {
  incRef(dataId: object): void;
  readSync(dataId: object): tf.backend_util.BackendValues;
}

/**
 * A tf.Tensor view of a kernel input. Inputs normally already are Tensors (the engine passes the
 * caller's tensors through), and are then used as they are. A bare TensorInfo is wrapped in a
 * new Tensor after `incRef` on its data, so that disposing the wrapper (which `tf.tidy` does)
 * drops only the extra reference instead of freeing the caller's buffer.
 */
export function asTensor<R extends tf.Rank>(info: tf.TensorInfo, backend: KernelBackend): tf.Tensor<R> {
  if (info instanceof tf.Tensor) return info as tf.Tensor<R>;
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor<R>;
}

/** The input's values as a Float32Array (used only for small tensors such as filters). */
export function readFloat32(info: tf.TensorInfo, backend: KernelBackend): Float32Array {
  const values = backend.readSync(info.dataId);
  if (values instanceof Float32Array) return values;
  return Float32Array.from(values as ArrayLike<number>);
}

/** Normalises a stride attribute (`number | [number, number]`) to `[height, width]`. */
export function pair(v: number | [number, number] | number[]): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (v.length !== 2) throw new CttaError(`expected 2 values, got [${v.join(', ')}]`, { exitCode: 1 });
  return [v[0]!, v[1]!];
}

/** Rejects dilation rates other than 1 (the composed backward kernels assume them). */
export function requireUnitDilation(kernel: string, dilations: number | [number, number] | number[] | undefined): void {
  if (dilations == null) return;
  const [dh, dw] = pair(dilations);
  if (dh !== 1 || dw !== 1) {
    throw new CttaError(`${kernel} on wasm supports dilation 1 only, got [${dh}, ${dw}]`, { exitCode: 1 });
  }
}

/** Padding that may be negative: negative entries crop, positive ones are passed on. */
export interface SignedPad {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/**
 * Crops the rows/columns of an NHWC tensor where `pad` is negative, and returns the tensor plus
 * the (now non-negative) explicit padding a convolution should apply.
 */
export function cropNegativePad(
  x: tf.Tensor4D,
  pad: SignedPad,
): { x: tf.Tensor4D; pad: [[0, 0], [number, number], [number, number], [0, 0]] } {
  const [, h, w] = x.shape;
  const cropTop = Math.max(0, -pad.top);
  const cropBottom = Math.max(0, -pad.bottom);
  const cropLeft = Math.max(0, -pad.left);
  const cropRight = Math.max(0, -pad.right);
  let out = x;
  if (cropTop + cropBottom + cropLeft + cropRight > 0) {
    const keepH = h - cropTop - cropBottom;
    const keepW = w - cropLeft - cropRight;
    if (keepH <= 0 || keepW <= 0) {
      throw new CttaError(`convolution geometry leaves no input (crop ${cropTop},${cropBottom},${cropLeft},${cropRight} of ${h}x${w})`, {
        exitCode: 1,
      });
    }
    out = tf.slice(x, [0, cropTop, cropLeft, 0], [-1, keepH, keepW, -1]);
  }
  return {
    x: out,
    pad: [
      [0, 0],
      [Math.max(0, pad.top), Math.max(0, pad.bottom)],
      [Math.max(0, pad.left), Math.max(0, pad.right)],
      [0, 0],
    ],
  };
}

/** 'NCHW' -> true, anything else ('NHWC', undefined) -> false. */
export function isChannelsFirst(dataFormat: string | undefined): boolean {
  return dataFormat === 'NCHW' || dataFormat === 'channelsFirst';
}
