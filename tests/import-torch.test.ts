// ctta import-torch: a PyTorch state_dict (safetensors, parsed in TypeScript) becomes a ctta
// checkpoint that reproduces PyTorch's logits. The fixture (tests/fixtures/torch-wrn/, written once
// by scripts/fixtures/torch-wrn.py with PyTorch) is a WideResNet-10-1 with RobustBench's names,
// non-trivial BatchNorm statistics, 4 input images and PyTorch's logits for them.
import * as tf from '@tensorflow/tfjs';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/models/checkpoint.js';
import { readSafetensors } from '../src/models/import/safetensors.js';
import { importStateDict } from '../src/models/import/torch.js';
import { createModel } from '../src/models/registry.js';
import { ROOT, runCli, useWasm } from './helpers.js';

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
