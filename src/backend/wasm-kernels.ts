/**
 * Kernels the tfjs wasm backend (4.22) lacks or implements slowly, registered for backend
 * `wasm`. Each lives in its own file under ./kernels/ and is composed from fast wasm ops.
 *
 * - `Conv2DBackpropFilter` (missing upstream): one XNNPACK convolution, batch as channels.
 * - `DepthwiseConv2dNativeBackpropFilter` / `...BackpropInput` (missing upstream).
 * - `Conv2DBackpropInput`: replaces the stock naive C++ loop with an XNNPACK convolution.
 * - `UnsortedSegmentSum` (missing upstream; AdamW and gather gradients need it).
 */
import * as tf from '@tensorflow/tfjs';
import { conv2dBackpropFilterConfig } from './kernels/conv2d-backprop-filter.js';
import { conv2dBackpropInputConfig } from './kernels/conv2d-backprop-input.js';
import { depthwiseBackpropFilterConfig } from './kernels/depthwise-backprop-filter.js';
import { depthwiseBackpropInputConfig } from './kernels/depthwise-backprop-input.js';
import { unsortedSegmentSumConfig } from './kernels/unsorted-segment-sum.js';

/** Kernels that are missing upstream: registered unless some other version already is. */
const MISSING: tf.KernelConfig[] = [
  conv2dBackpropFilterConfig,
  depthwiseBackpropFilterConfig,
  depthwiseBackpropInputConfig,
  unsortedSegmentSumConfig,
];
/** Kernels whose stock version is replaced by ours. */
const REPLACEMENTS: tf.KernelConfig[] = [conv2dBackpropInputConfig];

/**
 * Registers the kernels above for the wasm backend. Idempotent: calling it again (or after
 * another copy registered the same kernels) changes nothing.
 */
export function registerWasmKernels(): void {
  for (const config of MISSING) {
    if (tf.getKernel(config.kernelName, config.backendName) === undefined) tf.registerKernel(config);
  }
  for (const config of REPLACEMENTS) {
    const existing = tf.getKernel(config.kernelName, config.backendName);
    if (existing?.kernelFunc === config.kernelFunc) continue;
    if (existing !== undefined) tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
  }
}
