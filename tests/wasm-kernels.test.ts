/**
 * The composed wasm kernels (src/backend/wasm-kernels.ts) against the tfjs cpu backend, against
 * finite differences, and for leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerWasmKernels } from '../src/backend/wasm-kernels.js';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Strides = number | [number, number];
type Shape4 = [number, number, number, number];

const NEW_KERNELS = [
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'UnsortedSegmentSum',
];

let stockBackpropInput: tf.KernelConfig | undefined;

beforeAll(async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  expect(await tf.setBackend('wasm')).toBe(true);
  stockBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  registerWasmKernels();
});

/** Deterministic uniform(-1, 1) values (mulberry32). */
function randomValues(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** Runs `fn` on the given backend and returns its result; the wasm backend is restored after. */
async function onBackend<T>(name: 'cpu' | 'wasm', fn: () => T): Promise<T> {
  await tf.setBackend(name);
  try {
    return fn();
  } finally {
    await tf.setBackend('wasm');
  }
}

/** max |a - b| / max |a| (the scale-free error used throughout). */
function relError(expected: Float32Array | Int32Array, actual: Float32Array | Int32Array): number {
  expect(actual.length).toBe(expected.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    num = Math.max(num, Math.abs(expected[i]! - actual[i]!));
    den = Math.max(den, Math.abs(expected[i]!));
  }
  expect(den).toBeGreaterThan(0);
  return num / den;
}

interface ConvCase {
  x: Shape4;
  f: Shape4;
  strides: Strides;
  pad: Pad;
  round?: 'floor' | 'round' | 'ceil';
}

const label = (c: ConvCase): string =>
  `x ${c.x.join('x')} f ${c.f.join('x')} stride ${JSON.stringify(c.strides)} pad ${JSON.stringify(c.pad)}${c.round ? ` ${c.round}` : ''}`;

/**
 * dL/dx and dL/dW of L = sum(op(x, W) * R) on one backend (R fixed, not all ones, so that every
 * output position weighs differently and misplaced gradients show).
 */
function gradsOf(op: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D, c: ConvCase, seed: number): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(randomValues(size(c.x), seed), c.x);
    const w = tf.tensor4d(randomValues(size(c.f), seed + 1), c.f);
    const outShape = op(x, w).shape;
    const r = tf.tensor(randomValues(size(outShape), seed + 2), outShape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op(a as tf.Tensor4D, b as tf.Tensor4D), r)))([x, w]);
    return [dx!.dataSync() as Float32Array, dw!.dataSync() as Float32Array];
  });
}

const conv = (c: ConvCase) => (x: tf.Tensor4D, w: tf.Tensor4D) =>
  tf.conv2d(x, w, c.strides, c.pad as 'same', 'NHWC', 1, c.round);
const depthwise = (c: ConvCase) => (x: tf.Tensor4D, w: tf.Tensor4D) =>
  tf.depthwiseConv2d(x, w, c.strides, c.pad as 'same', 'NHWC', 1, c.round);

const CONV_CASES: ConvCase[] = [
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [2, 10, 7, 3], f: [3, 3, 3, 4], strides: 2, pad: 'valid' },
  { x: [1, 11, 12, 2], f: [5, 5, 2, 3], strides: 3, pad: 'same' },
  { x: [1, 11, 10, 2], f: [5, 5, 2, 3], strides: 3, pad: 'valid' },
  { x: [3, 8, 8, 4], f: [1, 1, 4, 5], strides: 2, pad: 'valid' },
  { x: [3, 7, 7, 4], f: [1, 1, 4, 5], strides: 1, pad: 'same' },
  { x: [2, 12, 12, 2], f: [5, 3, 2, 3], strides: 2, pad: 'same' },
  { x: [2, 9, 8, 3], f: [2, 3, 3, 2], strides: [2, 3], pad: 'same' },
  { x: [2, 9, 8, 3], f: [3, 2, 3, 2], strides: [1, 2], pad: [[0, 0], [1, 2], [0, 3], [0, 0]] },
  { x: [2, 8, 9, 3], f: [3, 3, 3, 2], strides: 2, pad: 1, round: 'floor' },
  { x: [1, 6, 6, 2], f: [3, 3, 2, 2], strides: 3, pad: 'valid' },
];

const DEPTHWISE_CASES: ConvCase[] = [
  { x: [2, 9, 9, 3], f: [3, 3, 3, 1], strides: 1, pad: 'same' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 2], strides: 2, pad: 'same' },
  { x: [2, 10, 7, 3], f: [3, 3, 3, 1], strides: 2, pad: 'valid' },
  { x: [1, 11, 12, 2], f: [5, 5, 2, 3], strides: 3, pad: 'same' },
  { x: [1, 11, 10, 2], f: [5, 5, 2, 1], strides: 3, pad: 'valid' },
  { x: [3, 8, 8, 4], f: [1, 1, 4, 2], strides: 2, pad: 'valid' },
  { x: [2, 12, 12, 4], f: [5, 3, 4, 1], strides: 1, pad: 'valid' },
  { x: [2, 9, 8, 3], f: [2, 3, 3, 2], strides: [2, 3], pad: 'same' },
];

describe('registerWasmKernels', () => {
  it('registers the missing kernels and replaces the stock Conv2DBackpropInput', () => {
    for (const name of NEW_KERNELS) expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
    const ours = tf.getKernel('Conv2DBackpropInput', 'wasm');
    expect(stockBackpropInput).toBeDefined();
    expect(ours!.kernelFunc).not.toBe(stockBackpropInput!.kernelFunc);
  });

  it('is idempotent', () => {
    const before = [...NEW_KERNELS, 'Conv2DBackpropInput'].map((n) => tf.getKernel(n, 'wasm')!.kernelFunc);
    registerWasmKernels();
    registerWasmKernels();
    const after = [...NEW_KERNELS, 'Conv2DBackpropInput'].map((n) => tf.getKernel(n, 'wasm')!.kernelFunc);
    expect(after).toEqual(before);
  });
});

describe('conv2d gradients (Conv2DBackpropFilter, Conv2DBackpropInput) match the cpu backend', () => {
  CONV_CASES.forEach((c, i) => {
    it(label(c), async () => {
      const cpu = await onBackend('cpu', () => gradsOf(conv(c), c, 100 + i));
      const wasm = gradsOf(conv(c), c, 100 + i);
      expect(relError(cpu[0]!, wasm[0]!), 'dx').toBeLessThan(1e-4);
      expect(relError(cpu[1]!, wasm[1]!), 'dW').toBeLessThan(1e-4);
    });
  });

  it('NCHW data format (kernels called directly)', async () => {
    const xShape: Shape4 = [2, 3, 9, 8];
    const fShape: Shape4 = [3, 2, 3, 4];
    const attrs = { strides: [2, 1], pad: [[0, 0], [0, 0], [1, 0], [2, 1]], dataFormat: 'NCHW' } as const;
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(randomValues(size(xShape), 7), xShape);
        const f = tf.tensor4d(randomValues(size(fShape), 8), fShape);
        const { outShape } = tf.backend_util.computeConv2DInfo(
          xShape, fShape, attrs.strides as [number, number], 1,
          attrs.pad as unknown as tf.backend_util.ExplicitPadding, undefined, false, 'channelsFirst',
        );
        expect(outShape).toEqual([2, 4, 4, 10]);
        const dy = tf.tensor4d(randomValues(size(outShape), 9), outShape as Shape4);
        const dW = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: fShape } as never) as tf.Tensor;
        const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...attrs, inputShape: xShape } as never) as tf.Tensor;
        expect(dW.shape).toEqual(fShape);
        expect(dx.shape).toEqual(xShape);
        return [dx.dataSync() as Float32Array, dW.dataSync() as Float32Array];
      });
    const cpu = await onBackend('cpu', run);
    const wasm = run();
    expect(relError(cpu[0]!, wasm[0]!), 'dx').toBeLessThan(1e-4);
    expect(relError(cpu[1]!, wasm[1]!), 'dW').toBeLessThan(1e-4);
  });

  it('the replacement Conv2DBackpropInput agrees with the stock wasm kernel', () => {
    const xShape: Shape4 = [2, 10, 9, 5];
    const fShape: Shape4 = [3, 3, 5, 6];
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NHWC', inputShape: xShape };
    tf.tidy(() => {
      const f = tf.tensor4d(randomValues(size(fShape), 11), fShape);
      const dy = tf.tensor4d(randomValues(2 * 5 * 5 * 6, 12), [2, 5, 5, 6]);
      const ours = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, attrs as never) as tf.Tensor;
      const stockOut = stockBackpropInput!.kernelFunc({ inputs: { dy, filter: f }, attrs: attrs as never, backend: tf.backend() });
      const stock = tf.engine().makeTensorFromTensorInfo(stockOut as tf.TensorInfo);
      expect(relError(stock.dataSync() as Float32Array, ours.dataSync() as Float32Array)).toBeLessThan(1e-5);
    });
  });
});

describe('depthwise conv2d gradients match the cpu backend', () => {
  DEPTHWISE_CASES.forEach((c, i) => {
    it(label(c), async () => {
      const cpu = await onBackend('cpu', () => gradsOf(depthwise(c), c, 200 + i));
      const wasm = gradsOf(depthwise(c), c, 200 + i);
      expect(relError(cpu[0]!, wasm[0]!), 'dx').toBeLessThan(1e-4);
      expect(relError(cpu[1]!, wasm[1]!), 'dW').toBeLessThan(1e-4);
    });
  });
});

describe('finite differences (independent of the cpu backend)', () => {
  /**
   * L(W) = sum(op(x, W) * R) is linear in W, so a central difference is exact up to float32
   * rounding of L (|L| ~ 10 here: ~1e-6 each, / 2h = 2e-2 -> ~1e-4 absolute).
   */
  function checkFilterGrad(op: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D, c: ConvCase): void {
    const h = 1e-2;
    const xv = randomValues(size(c.x), 31);
    const wv = randomValues(size(c.f), 32);
    const x = tf.tensor4d(xv, c.x);
    const outShape = tf.tidy(() => op(x, tf.tensor4d(wv, c.f)).shape);
    const r = tf.tensor(randomValues(size(outShape), 33), outShape);
    const loss = (w: Float32Array) => tf.tidy(() => tf.sum(tf.mul(op(x, tf.tensor4d(w, c.f)), r)).dataSync()[0]!);
    const analytic = tf.tidy(
      () => tf.grad((w: tf.Tensor) => tf.sum(tf.mul(op(x, w as tf.Tensor4D), r)))(tf.tensor4d(wv, c.f)).dataSync() as Float32Array,
    );
    let maxErr = 0;
    let scale = 0;
    for (let i = 0; i < wv.length; i++) {
      const plus = wv.slice();
      const minus = wv.slice();
      plus[i]! += h;
      minus[i]! -= h;
      const numeric = (loss(plus) - loss(minus)) / (2 * h);
      maxErr = Math.max(maxErr, Math.abs(numeric - analytic[i]!));
      scale = Math.max(scale, Math.abs(analytic[i]!));
    }
    x.dispose();
    r.dispose();
    expect(scale).toBeGreaterThan(0.5);
    expect(maxErr).toBeLessThan(2e-3 + 1e-3 * scale);
  }

  it('conv2d filter gradient, stride 2, same', () => {
    const c: ConvCase = { x: [2, 7, 6, 3], f: [3, 3, 3, 2], strides: 2, pad: 'same' };
    checkFilterGrad(conv(c), c);
  });

  it('conv2d filter gradient, stride [1, 2], valid, non-square', () => {
    const c: ConvCase = { x: [2, 6, 7, 2], f: [2, 3, 2, 3], strides: [1, 2], pad: 'valid' };
    checkFilterGrad(conv(c), c);
  });

  it('depthwise filter gradient, stride 2, same, multiplier 2', () => {
    const c: ConvCase = { x: [2, 7, 6, 3], f: [3, 3, 3, 2], strides: 2, pad: 'same' };
    checkFilterGrad(depthwise(c), c);
  });

  it('conv2d input gradient, stride 3, same (via the filter-gradient check with x and W swapped roles)', () => {
    // d/dx of sum(conv(x, W) * R): check with the same machinery by treating x as the variable.
    const c: ConvCase = { x: [1, 7, 8, 2], f: [3, 3, 2, 2], strides: 3, pad: 'same' };
    const wv = randomValues(size(c.f), 41);
    const w = tf.tensor4d(wv, c.f);
    const asFilterOp = (_unused: tf.Tensor4D, variable: tf.Tensor4D) => conv(c)(variable, w);
    checkFilterGrad(asFilterOp, { ...c, x: c.f, f: c.x });
    w.dispose();
  });
});

describe('memory', () => {
  it('gradient computations leak no tensors and keep their inputs alive', () => {
    const x = tf.tensor4d(randomValues(2 * 8 * 8 * 3, 51), [2, 8, 8, 3]);
    const w = tf.tensor4d(randomValues(3 * 3 * 3 * 4, 52), [3, 3, 3, 4]);
    const dw = tf.tensor4d(randomValues(3 * 3 * 3 * 2, 53), [3, 3, 3, 2]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))))([x, w]);
        const gd = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.square(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))),
        )([x, dw]);
        const gs = tf.grad((p: tf.Tensor) => tf.sum(tf.gather(p, tf.tensor1d([0, 2, 2], 'int32'))))(tf.ones([4, 3]));
        for (const t of [...g, ...gd, gs]) t.dataSync();
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    // Inputs still hold their data.
    expect(x.dataSync()[0]).toBeCloseTo(randomValues(1, 51)[0]!, 6);
    expect(w.dataSync()[5]).toBeCloseTo(randomValues(6, 52)[5]!, 6);
    tf.dispose([x, w, dw]);
  });

  it('kernels given bare TensorInfo inputs do not free the caller buffers', () => {
    const x = tf.tensor4d(randomValues(1 * 6 * 6 * 2, 61), [1, 6, 6, 2]);
    const dy = tf.tensor4d(randomValues(1 * 3 * 3 * 4, 62), [1, 3, 3, 4]);
    const f = tf.tensor4d(randomValues(3 * 3 * 2 * 4, 63), [3, 3, 2, 4]);
    const df = tf.tensor4d(randomValues(3 * 3 * 2 * 2, 64), [3, 3, 2, 2]);
    const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const backend = tf.backend();
    const calls: [string, Record<string, tf.TensorInfo>, Record<string, unknown>][] = [
      ['Conv2DBackpropFilter', { x: info(x), dy: info(dy) }, { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 2, 4] }],
      ['Conv2DBackpropInput', { dy: info(dy), filter: info(f) }, { strides: 2, pad: 'same', dataFormat: 'NHWC', inputShape: [1, 6, 6, 2] }],
      ['DepthwiseConv2dNativeBackpropFilter', { x: info(x), dy: info(dy) }, { strides: 2, pad: 'same', filterShape: [3, 3, 2, 2] }],
      ['DepthwiseConv2dNativeBackpropInput', { dy: info(dy), filter: info(df) }, { strides: 2, pad: 'same', inputShape: [1, 6, 6, 2] }],
    ];
    const before = tf.memory().numTensors;
    for (const [name, inputs, attrs] of calls) {
      const out = tf.getKernel(name, 'wasm')!.kernelFunc({ inputs, attrs: attrs as never, backend }) as tf.Tensor;
      expect(out, name).toBeInstanceOf(tf.Tensor);
      out.dispose();
      expect(tf.memory().numTensors, name).toBe(before);
    }
    expect(Array.from(x.dataSync().slice(0, 3))).toEqual(Array.from(randomValues(3, 61)));
    expect(Array.from(dy.dataSync().slice(0, 3))).toEqual(Array.from(randomValues(3, 62)));
    expect(Array.from(f.dataSync().slice(0, 3))).toEqual(Array.from(randomValues(3, 63)));
    tf.dispose([x, dy, f, df]);
  });
});

describe('UnsortedSegmentSum', () => {
  it('matches the cpu backend, dropping out-of-range ids', async () => {
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor3d(randomValues(9 * 3 * 2, 71), [9, 3, 2]);
        const ids = tf.tensor1d([0, 4, 2, 4, -1, 0, 7, 1, 4], 'int32');
        return tf.unsortedSegmentSum(x, ids, 5).dataSync() as Float32Array;
      });
    const cpu = await onBackend('cpu', run);
    const wasm = run();
    expect(relError(cpu, wasm)).toBeLessThan(1e-6);
    // Segment 3 gets nothing; segment 0 = rows 0 + 5.
    expect(Array.from(wasm.slice(18, 24))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('sums int32 values exactly and keeps the dtype', () => {
    tf.tidy(() => {
      const out = tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4, 5], 'int32'), tf.tensor1d([0, 2, 0, -1, 7], 'int32'), 4);
      expect(out.dtype).toBe('int32');
      expect(Array.from(out.dataSync())).toEqual([4, 0, 2, 0]);
    });
  });

  it('gives the gradient of tf.gather', async () => {
    const run = () =>
      tf.tidy(() => {
        const p = tf.tensor2d(randomValues(6 * 3, 81), [6, 3]);
        const idx = tf.tensor1d([1, 1, 4, 0, 5, 1], 'int32');
        const r = tf.tensor2d(randomValues(6 * 3, 82), [6, 3]);
        return tf.grad((q: tf.Tensor) => tf.sum(tf.mul(tf.gather(q, idx), r)))(p).dataSync() as Float32Array;
      });
    const cpu = await onBackend('cpu', run);
    expect(relError(cpu, run())).toBeLessThan(1e-6);
  });
});
