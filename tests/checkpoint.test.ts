import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel, saveModel } from '../src/models/checkpoint.js';
import { createModel } from '../src/models/registry.js';
import { expectCttaError, maxAbsDiff, useWasm } from './helpers.js';

beforeAll(useWasm);

const fields = { dataset: 'fashion-mnist', classNames: ['a', 'b'], classes: [0, 1], command: 'ctta pretrain ...' };

describe('checkpoints', () => {
  it('round-trips weights, running statistics and the manifest (BN and GN models)', async () => {
    for (const name of ['resnet8', 'resnet8_gn']) {
      const dir = mkdtempSync(join(tmpdir(), 'ctta-ckpt-'));
      const net = createModel(name, { numClasses: 2, seed: 5 });
      // Make running statistics non-trivial so a lost buffer would show.
      net.setNormStatistics('batch', { momentum: 0.5 });
      const x = tf.randomUniform([6, 28, 28, 1], 0, 1, 'float32', 7) as tf.Tensor4D;
      tf.dispose(net.logits(x));
      net.setNormStatistics('running');
      const expected = net.logits(x);
      const manifest = await saveModel(net, dir, fields);
      expect(manifest.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
      const loaded = await loadModel(dir);
      expect(loaded.manifest?.architecture).toBe(name);
      expect(loaded.manifest?.classes).toEqual([0, 1]);
      expect(maxAbsDiff(loaded.network.logits(x), expected)).toBe(0);
      // model.json is a standard tfjs LayersModel file.
      const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      expect(json.format).toBe('layers-model');
      expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
      tf.dispose([x, expected]);
      net.dispose();
      loaded.network.dispose();
    }
  });

  it('refuses modified or truncated weights and names the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctta-ckpt-'));
    const net = createModel('resnet8', { numClasses: 2 });
    await saveModel(net, dir, fields);
    net.dispose();
    const weights = join(dir, 'weights.bin');
    const bytes = readFileSync(weights);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(weights, bytes);
    await expectCttaError(() => loadModel(dir), /do not match the sha256 in manifest\.json/);
    truncateSync(weights, 1000);
    await expectCttaError(() => loadModel(dir), /weights of .*model\.json hold 1000 bytes but model\.json declares/);
  });

  it('gives one clear line for a missing model or a file that is not a model', async () => {
    await expectCttaError(() => loadModel('/nonexistent/model'), /model not found: \/nonexistent\/model.*fix:/);
    const dir = mkdtempSync(join(tmpdir(), 'ctta-ckpt-'));
    writeFileSync(join(dir, 'model.json'), '{"hello": 1}');
    await expectCttaError(() => loadModel(dir), /is not a tfjs LayersModel/);
    writeFileSync(join(dir, 'model.json'), '{not json');
    await expectCttaError(() => loadModel(dir), /is not valid JSON/);
  });
});
