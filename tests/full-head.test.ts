// MethodDefinition.fullHead is what sweeps and the reproduction report rely on to know, before
// running, which methods cannot start from a class-subset checkpoint. It must say what init does:
// every built-in method is started on the base-5 model (a head over classes 0-4 of 10).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import '../src/methods/index.js';
import { createMethod, listMethods } from '../src/methods/registry.js';
import { loadModel } from '../src/models/checkpoint.js';
import { methodContext, ROOT, useWasm } from './helpers.js';

beforeAll(useWasm);

/** Options that keep each init cheap; they do not change what the head must be. */
const CHEAP: Record<string, Record<string, unknown>> = {
  eata: { fisherSize: 16, fisherBatchSize: 16 }, ear: { hyperDim: 1024, calibrationSize: 16 }, vida: { warmup: 'none' },
  acil: { bufferSize: 64 }, 'aef-ocl': { bufferSize: 64 }, 'ds-al': { bufferSize: 64 },
};

it.each(listMethods().map((d) => [d.name, d.fullHead === true] as const))('%s: init refuses a class-subset model exactly when fullHead is %s', async (name, fullHead) => {
  const { network } = await loadModel(`${ROOT}models/fmnist-resnet8-base5`);
  const method = createMethod(name, CHEAP[name] ?? {}, 'fashion-mnist');
  const images = async (n: number) => tf.randomUniform([n, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  try {
    const init = method.init(await methodContext({ network, numClasses: 10, headClasses: [0, 1, 2, 3, 4], dataset: 'fashion-mnist', cleanImages: images }));
    if (fullHead) await expect(init).rejects.toThrow(/over all 10 classes of the dataset, but the model's head has 5 outputs/);
    else await expect(init).resolves.toBeUndefined();
  } finally {
    method.dispose();
    network.dispose();
  }
});
