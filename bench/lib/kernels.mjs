// Kernel-level figures on the running tfjs backend: a kernel profile of one call (tf.profile, with
// nested kernels told apart), per-shape convolution GFLOP/s (forward, input gradient, filter
// gradient) and a plain large matMul as the backend's attainable ceiling.
import * as tf from '@tensorflow/tfjs';
import { convFlops } from './passes.mjs';

/**
 * tf.profile of one call of f. Kernels that ctta composes from other kernels (its wasm
 * Conv2DBackpropFilter/Input) run their parts as nested kernels, which tf.profile lists beside
 * them; the engine pushes each record after leaving the kernel, so the engine's kernelDepth at
 * that moment is the record's nesting depth. Only depth-0 records are summed (their time
 * includes the nested ones'), so shares add up to the kernel time. With calls > 1, f runs that
 * many times inside one profile and every figure is per call; peakBytes is over all of them.
 */
export async function profileCall(f, calls = 1) {
  const engine = tf.engine();
  const state = engine.state;
  const profile = state.activeProfile;
  const own = Object.getOwnPropertyDescriptor(profile, 'kernels');
  Object.defineProperty(profile, 'kernels', {
    configurable: true,
    get() {
      return this._benchKernels;
    },
    set(list) {
      list.push = function push(...records) {
        for (const r of records) r.depth = state.kernelDepth;
        return Array.prototype.push.apply(this, records);
      };
      this._benchKernels = list;
    },
  });
  const before = engine.memory().numBytes;
  const t = performance.now();
  let info;
  try {
    info = await tf.profile(async () => {
      for (let i = 0; i < calls; i++) await f();
    });
  } finally {
    const kernels = profile._benchKernels;
    delete profile.kernels;
    delete profile._benchKernels;
    if (own) Object.defineProperty(profile, 'kernels', own);
    profile.kernels = kernels ?? [];
  }
  const wallMs = performance.now() - t;
  const byName = new Map();
  let kernelMs = 0;
  let nested = 0;
  for (const k of info.kernels) {
    if (k.depth > 0) {
      nested++;
      continue;
    }
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    kernelMs += ms;
    const e = byName.get(k.name) ?? { name: k.name, ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    byName.set(k.name, e);
  }
  const kernels = [...byName.values()].sort((a, b) => b.ms - a.ms).map((k) => ({ name: k.name, ms: k.ms / calls, calls: k.calls / calls }));
  const timed = info.kernels.some((k) => typeof k.kernelTimeMs === 'number');
  // Per call: kernel time, wall time of the profiled calls (profiler bookkeeping included).
  return { kernels, kernelMs: kernelMs / calls, nested: nested / calls, wallMs: wallMs / calls, timed, peakBytes: Math.max(0, info.peakBytes - before), records: info.kernels.length / calls };
}

/** Waits for a tensor's value with a one-element read (not a copy of the whole output). */
function settle(t) {
  tf.tidy(() => tf.slice(t.reshape([-1]), [0], [1]).dataSync());
}

/** The three convolution kernels of one shape as synchronous calls, with their inputs. */
export function convCalls(s) {
  const x = tf.randomUniform([s.n, s.h, s.w, s.ci], -1, 1, 'float32', 3);
  const w = tf.randomUniform([s.k, s.k, s.ci, s.co], -0.1, 0.1, 'float32', 4);
  const dy = tf.randomUniform([s.n, s.oh, s.ow, s.co], -1, 1, 'float32', 5);
  const strides = [s.s, s.s];
  const run = (make) => () => {
    const out = make();
    settle(out);
    out.dispose();
  };
  return {
    fwd: run(() => tf.conv2d(x, w, strides, 'same')),
    dx: run(() => tf.conv2dTranspose(dy, w, [s.n, s.h, s.w, s.ci], strides, 'same')),
    dw: run(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides, pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [s.k, s.k, s.ci, s.co] })),
    dispose: () => tf.dispose([x, w, dy]),
  };
}

export const gflops = (flops, ms) => flops / (ms * 1e6);
export { convFlops };

/** n x n x n matMul as a synchronous call (2 n^3 flops). */
export function gemmCall(n) {
  const a = tf.randomUniform([n, n], -1, 1, 'float32', 6);
  const b = tf.randomUniform([n, n], -1, 1, 'float32', 7);
  return {
    call: () => {
      const c = tf.matMul(a, b);
      settle(c);
      c.dispose();
    },
    flops: 2 * n ** 3,
    dispose: () => tf.dispose([a, b]),
  };
}
