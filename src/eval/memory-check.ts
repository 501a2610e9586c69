/**
 * A batch size that cannot fit is refused before anything is allocated. The wasm backend's heap
 * ends at 4 GiB (32-bit addresses): past it, tfjs aborts with an out-of-memory error and a stack
 * trace half-way through a run. The check uses a lower bound (one layer's input and output for
 * the whole batch, float32), so it never refuses a batch that would fit; methods that need more
 * (backprop, augmented views) are caught at run time by the runner's out-of-memory message.
 */
import { totalmem } from 'node:os';
import { CttaError } from '../errors.js';
import type { Network } from '../models/network.js';

const WASM_HEAP_BYTES = 4 * 1024 ** 3;

/** Bytes the backend can hold at most: the wasm heap limit, else the machine's memory. */
export function backendMemoryLimit(backend: string): number {
  return backend === 'wasm' ? WASM_HEAP_BYTES : totalmem();
}

/** The largest activation of one image, in float32 elements (the input counts too). */
export function largestActivation(network: Network): number {
  let largest = network.inputShape.reduce((a, b) => a * b, 1);
  for (const layer of network.model.layers) {
    const shapes = Array.isArray(layer.outputShape[0]) || layer.outputShape.length === 0 ? (layer.outputShape as unknown as (number | null)[][]) : [layer.outputShape as (number | null)[]];
    for (const shape of shapes) {
      const size = shape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
      largest = Math.max(largest, size);
    }
  }
  return largest;
}

export function checkBatchFits(network: Network, batchSize: number, backend: string, where: string): void {
  const bytesPerImage = 2 * 4 * largestActivation(network); // one layer's input + output
  const needed = batchSize * bytesPerImage;
  const limit = backendMemoryLimit(backend);
  if (needed > limit) {
    const fits = Math.max(1, Math.floor(limit / bytesPerImage / 4)); // leave room for the rest
    throw new CttaError(`${where}: batchSize ${batchSize} needs at least ${gib(needed)} GiB of tensor memory, more than the ${backend} backend can hold (${gib(limit)} GiB)`, {
      fix: `lower "batchSize" (about ${fits} or less fits this model)`,
    });
  }
}

const gib = (bytes: number) => (bytes / 1024 ** 3).toFixed(1);
