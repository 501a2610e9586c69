// ctta's side of the pass benchmark: a zoo ResNet at batch 64 and its four passes, the weight
// export for the PyTorch twin, and the check that both compute the same function.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createModel, meanEntropy } from '../../dist/index.js';

/** The models of the pass benchmark: zoo name, image shape, depth and width of the twin. */
export const MODELS = {
  resnet8: { inputShape: [28, 28, 1], depth: 8 },
  resnet20: { inputShape: [32, 32, 3], depth: 20 },
};

export const PASSES = ['forward', 'bnadapt', 'tent', 'full'];
export const PASS_LABEL = {
  forward: 'forward (stored BN statistics)',
  bnadapt: 'BN-adapt forward (batch statistics)',
  tent: 'TENT step (BN affine, entropy, Adam)',
  full: 'full step (all weights, CE, SGD)',
};

const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/** A seeded zoo network with fixed random inputs, and each pass as a synchronous call. */
export function buildCtta(name, batch, numClasses = 10) {
  const { inputShape } = MODELS[name];
  const net = createModel(name, { inputShape, numClasses, seed: 0 });
  const x = tf.randomUniform([batch, ...inputShape], 0, 1, 'float32', 1);
  const y = tf.tidy(() => tf.oneHot(tf.randomUniform([batch], 0, numClasses, 'int32', 2), numClasses).toFloat());
  const affine = net.normAffineVariables();
  const all = net.trainableVariables();
  const adam = tf.train.adam(1e-3);
  const sgd = tf.train.sgd(0.01);
  const step = (vars, opt, loss) => {
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => loss(net.logits(x)), vars);
      opt.applyGradients(grads);
    });
    vars[0].dataSync(); // the update has run
  };
  const calls = {
    forward: () => tf.tidy(() => void net.logits(x).dataSync()),
    bnadapt: () => tf.tidy(() => void net.logits(x).dataSync()),
    tent: () => step(affine, adam, (logits) => meanEntropy(logits)),
    full: () => step(all, sgd, (logits) => tf.losses.softmaxCrossEntropy(y, logits)),
  };
  /** Norm statistics each pass uses: stored for the forward, the batch's (never stored) otherwise. */
  const prepare = (pass) => net.setNormStatistics(pass === 'forward' ? 'running' : 'batch');
  const count = (vars) => vars.reduce((s, v) => s + v.size, 0);
  const trainable = count(all);
  const buffers = count([...net.namedWeights().values()]) - trainable;
  return {
    net, x, y, calls, prepare, trainable, buffers,
    dispose() {
      tf.dispose([x, y]);
      adam.dispose();
      sgd.dispose();
      net.dispose();
    },
  };
}

/** Gives every norm layer non-trivial statistics and affine weights (seeded), so the check means something. */
export function perturbNorms(net, seed = 7) {
  net.norms.forEach((n, i) => {
    const c = n.channels;
    tf.tidy(() => {
      n.gamma?.assign(tf.randomUniform([c], 0.5, 1.5, 'float32', seed + 4 * i));
      n.beta?.assign(tf.randomNormal([c], 0, 0.2, 'float32', seed + 4 * i + 1));
      n.movingMean?.assign(tf.randomNormal([c], 0, 0.2, 'float32', seed + 4 * i + 2));
      n.movingVariance?.assign(tf.randomUniform([c], 0.5, 1.5, 'float32', seed + 4 * i + 3));
    });
  });
}

/** Writes every weight as float32 into dir/<tag>.bin with a JSON index [{name, shape, offset}]. */
export function exportWeights(net, dir, tag) {
  const entries = [...net.namedWeights().entries()];
  const total = entries.reduce((s, [, v]) => s + v.size, 0);
  const flat = new Float32Array(total);
  const index = [];
  let offset = 0;
  for (const [name, v] of entries) {
    flat.set(v.dataSync(), offset);
    index.push({ name, shape: v.shape, offset });
    offset += v.size;
  }
  const bin = join(dir, `${tag}.bin`);
  const json = join(dir, `${tag}.json`);
  writeFileSync(bin, Buffer.from(flat.buffer));
  writeFileSync(json, JSON.stringify(index));
  return { bin, index: json };
}

export function writeTensor(t, path) {
  writeFileSync(path, Buffer.from(new Float32Array(t.dataSync()).buffer));
  return path;
}

/** ctta's logits with stored and with batch statistics, and the TENT entropy gradient by weight name. */
export function cttaReference(net, x) {
  net.setNormStatistics('running');
  const running = tf.tidy(() => net.logits(x).dataSync());
  net.setNormStatistics('batch');
  const batch = tf.tidy(() => net.logits(x).dataSync());
  const grads = {};
  tf.tidy(() => {
    const vars = net.norms.flatMap((n) => [[`${n.name}/gamma`, n.gamma], [`${n.name}/beta`, n.beta]]).filter(([, v]) => v);
    const { grads: g } = tf.variableGrads(() => meanEntropy(net.logits(x)), vars.map(([, v]) => v));
    for (const [key, v] of vars) grads[key] = g[v.name].dataSync();
  });
  return { running, batch, grads };
}

/** max |a-b| and max |a| of two flat arrays. */
export function maxDiff(a, b) {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return { diff, scale };
}

/** The shapes of every Conv2D of the network (deduplicated), for per-shape GFLOP/s. */
export function convShapes(net, batch) {
  const seen = new Map();
  for (const layer of net.bodyLayers()) {
    if (layer.getClassName() !== 'Conv2D') continue;
    const cfg = layer.getConfig();
    const kernel = layer.getWeights()[0].shape; // [kh, kw, ci, co]
    const inShape = layer.inboundNodes[0].inputShapes[0]; // [null, h, w, ci]
    const s = Array.isArray(cfg.strides) ? cfg.strides[0] : cfg.strides;
    const [h, w] = [inShape[1], inShape[2]];
    const shape = { n: batch, h, w, ci: kernel[2], co: kernel[3], k: kernel[0], s, oh: Math.ceil(h / s), ow: Math.ceil(w / s) };
    const key = `${h}x${w}x${shape.ci}->${shape.co} k${shape.k} s${s}`;
    const entry = seen.get(key) ?? { key, shape, layers: [] };
    entry.layers.push(layer.name);
    seen.set(key, entry);
  }
  return [...seen.values()];
}

export const convFlops = (s) => 2 * s.n * s.oh * s.ow * s.co * s.ci * s.k * s.k;
export { numel };
