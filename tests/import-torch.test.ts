// ctta import-torch: a PyTorch state_dict (safetensors, parsed in TypeScript) becomes a ctta
// checkpoint that reproduces PyTorch's logits. The fixture (tests/fixtures/torch-wrn/, written once
// by scripts/fixtures/torch-wrn.py with PyTorch) is a WideResNet-10-1 with RobustBench's names,
// non-trivial BatchNorm statistics, 4 input images and PyTorch's logits for them.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/checkpoint.js';
import { readSafetensors } from '../src/models/import/safetensors.js';
import { importStateDict } from '../src/models/import/torch.js';
import { createModel } from '../src/models/registry.js';
import '../src/methods/index.js';
import { createMethod } from '../src/methods/registry.js';
import { methodContext, ROOT, runCli, useWasm } from './helpers.js';

const FIXTURE = join(ROOT, 'tests/fixtures/torch-wrn');
const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8')) as { logits: number[][]; inputShape: [number, number, number, number] };
const inputs = () => tf.tensor4d(new Float32Array(readFileSync(join(FIXTURE, 'inputs-nhwc-f32.bin')).buffer.slice(0)), expected.inputShape);
const tmp = () => mkdtempSync(join(tmpdir(), 'ctta-import-'));

function maxDiff(a: number[][], b: number[][]): number {
  return Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i]![j]!))));
}

describe('ctta import-torch', () => {
  beforeAll(useWasm);

  it('the imported checkpoint reproduces PyTorch\'s logits to 1e-4', async () => {
    const out = join(tmp(), 'wrn10_1');
    const r = runCli(['import-torch', join(FIXTURE, 'wrn10_1.safetensors'), '--arch', 'wrn', '--out', out, '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    const { network, manifest } = await loadModel(out);
    expect(manifest.options).toMatchObject({ depth: 10, widen: 1, padding: 'torch', numClasses: 10 });
    expect(manifest.classNames[0]).toBe('airplane');
    network.setNormStatistics('running');
    const x = inputs();
    const logits = tf.tidy(() => network.logits(x).arraySync() as number[][]);
    expect(maxDiff(logits, expected.logits)).toBeLessThan(1e-4);
    x.dispose();
    network.dispose();
  });

  it('needs PyTorch\'s padding: the same weights with TensorFlow\'s "same" padding give other logits', () => {
    const torchPadded = importStateDict(readSafetensors(join(FIXTURE, 'wrn10_1.safetensors')), 'wrn', [32, 32, 3]);
    // The stride-2 3x3 convs of stages 2 and 3 get an explicit symmetric pad.
    expect(torchPadded.model.layers.filter((l) => l.getClassName() === 'ZeroPadding2D').map((l) => l.name)).toEqual(['s2_b0_conv1_pad', 's3_b0_conv1_pad']);
    const samePadded = createModel('wrn', { ...torchPadded.spec.options, padding: 'same' });
    for (const layer of samePadded.model.layers) {
      if (layer.weights.length > 0) layer.setWeights(torchPadded.model.getLayer(layer.name).getWeights());
    }
    const x = inputs();
    for (const n of [torchPadded, samePadded]) n.setNormStatistics('running');
    const a = tf.tidy(() => torchPadded.logits(x).arraySync() as number[][]);
    const b = tf.tidy(() => samePadded.logits(x).arraySync() as number[][]);
    expect(maxDiff(a, expected.logits)).toBeLessThan(1e-4);
    expect(maxDiff(b, expected.logits)).toBeGreaterThan(1e-3);
    torchPadded.dispose();
    samePadded.dispose();
    x.dispose();
  });

  it('another architecture, a truncated file or not a safetensors file: one line naming it, nothing written', () => {
    const dir = tmp();
    const truncated = join(dir, 'cut.safetensors');
    const bytes = readFileSync(join(FIXTURE, 'wrn10_1.safetensors'));
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 1000));
    copyFileSync(join(FIXTURE, 'expected.json'), join(dir, 'model.safetensors'));
    for (const [file, arch, message] of [
      [join(FIXTURE, 'wrn10_1.safetensors'), 'wrn28_10', /the state_dict is a WideResNet-10, not wrn28_10/],
      [truncated, 'wrn', /cut\.safetensors: tensor .* needs \d+ bytes at .*truncated or damaged/],
      [join(dir, 'model.safetensors'), 'wrn', /model\.safetensors is not a safetensors file/],
    ] as const) {
      const out = join(dir, 'out');
      const r = runCli(['import-torch', file, '--arch', arch, '--out', out, '--backend', 'wasm']);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
      expect(() => readFileSync(join(out, 'manifest.json'))).toThrow();
    }
  });
});

// TTT's CIFAR ResNet (pre-activation, parameter-free shortcuts; BatchNorm and GroupNorm) and
// torchvision's ResNet-50 (bottleneck blocks, 7x7 stem, max-pool), from
// tests/fixtures/torch-resnets/ (scripts/fixtures/torch-resnets.py): each network's PyTorch logits
// for 4 images, which the imported checkpoint must reproduce after a save and a load.
describe('ctta import-torch: TTT ResNet-26 and torchvision ResNet-50', () => {
  beforeAll(useWasm);
  const DIR = join(ROOT, 'tests/fixtures/torch-resnets');
  interface Fixture {
    arch: string;
    inputShape: [number, number, number, number];
    parameters: number;
    fullSizeParameters?: number;
    logits: number[][];
  }
  const fixture = (name: string) => JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as Fixture;
  const imagesOf = (name: string) => tf.tensor4d(new Float32Array(readFileSync(join(DIR, `${name}-inputs-nhwc-f32.bin`)).buffer.slice(0)), fixture(name).inputShape);
  const logitsOf = (network: { logits(x: tf.Tensor4D): tf.Tensor2D; setNormStatistics(s: 'running'): void }, name: string) => {
    network.setNormStatistics('running');
    const x = imagesOf(name);
    const out = tf.tidy(() => network.logits(x).arraySync());
    x.dispose();
    return out;
  };
  const trainableCount = (n: { model: tf.LayersModel }) => n.model.trainableWeights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a! * b!, 1)!, 0);

  it.each([
    ['ttt26_bn', ['--arch', 'resnet26'], { architecture: 'ttt_resnet26', norm: 'batch', width: 1 }],
    ['ttt8_gn_w2', ['--arch', 'ttt_resnet'], { architecture: 'ttt_resnet', norm: 'group', groups: 8, depth: 8, width: 2 }],
  ] as const)('%s: the saved checkpoint reproduces PyTorch\'s logits to 1e-4', async (name, args, expectedSpec) => {
    const out = join(tmp(), name);
    const r = runCli(['import-torch', join(DIR, `${name}.safetensors`), ...args, '--out', out, '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    const { network, manifest } = await loadModel(out);
    const { architecture, ...options } = expectedSpec;
    expect(manifest.architecture).toBe(architecture);
    // TTT normalises CIFAR images with mean 0.5, std 0.5: the default for its architecture.
    expect(manifest.options).toMatchObject({ ...options, padding: 'torch', inputNorm: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } });
    expect(trainableCount(network)).toBe(fixture(name).parameters);
    expect(maxDiff(logitsOf(network, name), fixture(name).logits)).toBeLessThan(1e-4);
    network.dispose();
  });

  it("a fresh process loads the checkpoint with the checkpoint module alone (it registers ctta's own layers itself)", () => {
    // ttt8_gn_w2 uses all three of ctta's layer classes: input normalisation, GroupNorm, zero-channel padding.
    const out = join(tmp(), 'gn');
    expect(runCli(['import-torch', join(DIR, 'ttt8_gn_w2.safetensors'), '--arch', 'ttt_resnet', '--out', out, '--backend', 'wasm']).code).toBe(0);
    const script = `
      import { loadModel } from ${JSON.stringify(join(ROOT, 'dist/models/checkpoint.js'))};
      import { setBackend } from ${JSON.stringify(join(ROOT, 'dist/backend/index.js'))};
      import * as tf from '@tensorflow/tfjs';
      import { readFileSync } from 'node:fs';
      await setBackend('wasm');
      const { network } = await loadModel(${JSON.stringify(out)});
      network.setNormStatistics('running');
      const x = tf.tensor4d(new Float32Array(readFileSync(${JSON.stringify(join(DIR, 'ttt8_gn_w2-inputs-nhwc-f32.bin'))}).buffer.slice(0)), [4, 32, 32, 3]);
      console.log(JSON.stringify(network.logits(x).arraySync()));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(maxDiff(JSON.parse(r.stdout.trim().split('\n').pop()!) as number[][], fixture('ttt8_gn_w2').logits)).toBeLessThan(1e-4);
  });

  it('resnet50: ImageNet class names from a folder, PyTorch\'s logits to 1e-4, and torchvision\'s 25,557,032 parameters at full size', async () => {
    const dir = tmp();
    // A stand-in for ImageNet-C/<corruption>/<severity>: one sub-folder per class, sorted by name.
    const wnids = Array.from({ length: 10 }, (_, i) => `n0${i}000000`);
    for (const w of [...wnids].reverse()) mkdirSync(join(dir, 'classes', w), { recursive: true });
    const out = join(dir, 'r50');
    const r = runCli(['import-torch', join(DIR, 'resnet50_w8.safetensors'), '--arch', 'resnet50', '--dataset', 'imagenet', '--class-names', join(dir, 'classes'), '--input', '64x64x3', '--out', out, '--backend', 'wasm']);
    expect(r.code, r.stderr).toBe(0);
    const { network, manifest } = await loadModel(out);
    expect(manifest.classNames).toEqual(wnids);
    expect(manifest.options).toMatchObject({ width: 8, padding: 'torch', inputNorm: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } });
    expect(trainableCount(network)).toBe(fixture('resnet50_w8').parameters);
    expect(maxDiff(logitsOf(network, 'resnet50_w8'), fixture('resnet50_w8').logits)).toBeLessThan(1e-4);
    network.dispose();
    const full = createModel('resnet50', { inputShape: [224, 224, 3], numClasses: 1000 });
    expect(trainableCount(full)).toBe(fixture('resnet50_w8').fullSizeParameters);
    full.dispose();
  });

  it('the input normalisation is part of the model: without it the logits differ', () => {
    const tensors = readSafetensors(join(DIR, 'ttt26_bn.safetensors'));
    const plain = importStateDict(tensors, 'resnet26', [32, 32, 3], { inputNorm: 'none' });
    expect(plain.model.layers.some((l) => l.name === 'input_norm')).toBe(false);
    expect(maxDiff(logitsOf(plain, 'ttt26_bn'), fixture('ttt26_bn').logits)).toBeGreaterThan(1e-3);
    plain.dispose();
    // Given explicitly as MEANS/STDS, it is the default's.
    const explicit = importStateDict(tensors, 'resnet26', [32, 32, 3], { inputNorm: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } });
    expect(maxDiff(logitsOf(explicit, 'ttt26_bn'), fixture('ttt26_bn').logits)).toBeLessThan(1e-4);
    explicit.dispose();
    // RobustBench's WideResNets take [0, 1] images (none by default), but one trained on normalised images can say so.
    const wrn = readSafetensors(join(FIXTURE, 'wrn10_1.safetensors'));
    const byDefault = importStateDict(wrn, 'wrn', [32, 32, 3]);
    const normalised = importStateDict(wrn, 'wrn', [32, 32, 3], { inputNorm: { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] } });
    expect(byDefault.model.layers.some((l) => l.name === 'input_norm')).toBe(false);
    expect(normalised.spec.options['inputNorm']).toEqual({ mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] });
    byDefault.dispose();
    normalised.dispose();
  });

  it('mistakes get one line and exit 2: imagenet without class names, the wrong architecture, a bad --input-norm', () => {
    const out = join(tmp(), 'out');
    for (const [args, message] of [
      [[join(DIR, 'resnet50_w8.safetensors'), '--arch', 'resnet50', '--dataset', 'imagenet'], /--dataset imagenet: its class names are not shipped.*--class-names/],
      [[join(DIR, 'resnet50_w8.safetensors'), '--arch', 'resnet26'], /the state_dict has no bn\.weight: it is not a resnet26/],
      [[join(DIR, 'ttt26_bn.safetensors'), '--arch', 'resnet50'], /\[4, 4, 4, 0\] blocks per stage, not resnet50's \[3, 4, 6, 3\]/],
      [[join(DIR, 'ttt8_gn_w2.safetensors'), '--arch', 'resnet26'], /the state_dict is TTT's ResNet-8, not resnet26/],
      [[join(DIR, 'ttt26_bn.safetensors'), '--arch', 'resnet26', '--input-norm', '0.5,0.5/1'], /--input-norm must be none, imagenet, ttt or MEANS\/STDS/],
    ] as const) {
      const r = runCli(['import-torch', ...args, '--out', out, '--backend', 'wasm']);
      expect(r.code, r.stderr).toBe(2);
      // One line; a usage error (commander's) adds "(run with --help for usage)".
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(message);
      expect(lines.slice(1)).toEqual(lines.length > 1 ? ['(run with --help for usage)'] : []);
      expect(existsSync(join(out, 'manifest.json'))).toBe(false);
    }
  });

  // The layers these networks add (input normalisation, max-pool, zero-channel shortcuts,
  // pre-activation order) under every test-time method: finite probabilities, no leaked tensors.
  // RoTTA has nothing to adapt in a GroupNorm network (it replaces BatchNorm) and says so.
  it.each([
    ['ttt26_bn', 'resnet26', 32],
    ['ttt8_gn_w2', 'ttt_resnet', 32],
    ['resnet50_w8', 'resnet50', 64],
  ] as const)('every test-time method adapts the imported %s', async (file, arch, size) => {
    const cheap: Record<string, Record<string, unknown>> = { cotta: { views: 2 }, vida: { views: 2, warmup: 'none' }, eata: { fisherSize: 16, fisherBatchSize: 8 } };
    const images = (seed: number, n = 8) => tf.randomUniform([n, size, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (const name of ['source', 'bn', 'tent', 'lame', 'cotta', 'vida', 'eata', 'sar', 'rotta', 'nhl']) {
      const network = importStateDict(readSafetensors(join(DIR, `${file}.safetensors`)), arch, [size, size, 3]);
      const method = createMethod(name, cheap[name] ?? {});
      try {
        const init = method.init(await methodContext({ network, cleanImages: async (n) => images(100, n) }));
        if (name === 'rotta' && file === 'ttt8_gn_w2') {
          await expect(init).rejects.toThrow(/rotta found nothing to train/);
          continue;
        }
        await init;
        for (let b = 0; b < 2; b++) {
          const x = images(b);
          const p = await method.predict(x);
          expect(p.shape, name).toEqual([8, 10]);
          expect(Array.from(p.dataSync()).every(Number.isFinite), name).toBe(true);
          await method.adapt(x);
          p.dispose();
          x.dispose();
        }
      } finally {
        method.dispose();
        network.dispose();
      }
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
