import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanImageSource } from '../src/streams/clean-images.js';
import { writeNpy } from '../src/streams/datasets/readers/index.js';
import { CLEAN_CORRUPTION } from '../src/streams/orderings/index.js';
import { parseScenario } from '../src/streams/scenario.js';
import { openStream, pixelsTensor, type Stream } from '../src/streams/stream.js';
import { Rng } from '../src/util/rng.js';
import { expectCttaError, useWasm } from './helpers.js';

beforeAll(useWasm);

/** What the runner did before clean images moved to the stream layer (src/eval/runner.ts). */
async function oldCleanImages(stream: Stream, seed: number, count: number): Promise<tf.Tensor4D> {
  const { height, width, channels } = stream.source;
  const all = Rng.derive(seed, 'clean-images').permutation(stream.source.labels.length);
  const indices = all.subarray(0, Math.min(count, all.length));
  const pixels = await stream.source.read(indices, { name: 'clean', corruption: CLEAN_CORRUPTION, severity: 0 });
  return pixelsTensor(pixels, [indices.length, height, width, channels]);
}

async function bytesOf(t: tf.Tensor4D): Promise<Buffer> {
  const data = await t.data();
  t.dispose();
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

const N = 20; // images per severity in the fake CIFAR-10-C, records in the fake CIFAR-10
const SIZE = 32 * 32 * 3;

/** A --data-dir holding a tiny CIFAR-10-C (gaussian_noise only) and CIFAR-10 test batch. */
async function fakeCifarDir(): Promise<{ dir: string; clean: Uint8Array }> {
  const dir = mkdtempSync(join(tmpdir(), 'ctta-clean-'));
  mkdirSync(join(dir, 'CIFAR-10-C'));
  mkdirSync(join(dir, 'cifar-10-batches-bin'));
  const corrupted = Uint8Array.from({ length: 5 * N * SIZE }, (_, i) => (i * 7) & 0xff);
  const labels = Int32Array.from({ length: 5 * N }, (_, i) => i % 10);
  await writeNpy(join(dir, 'CIFAR-10-C', 'gaussian_noise.npy'), corrupted, [5 * N, 32, 32, 3]);
  await writeNpy(join(dir, 'CIFAR-10-C', 'labels.npy'), labels, [5 * N]);
  // CIFAR binary records: a label byte, then the image planar (R plane, G plane, B plane).
  const records = new Uint8Array(N * (1 + SIZE));
  const clean = new Uint8Array(N * SIZE);
  for (let i = 0; i < N; i++) {
    records[i * (1 + SIZE)] = i % 10;
    for (let p = 0; p < SIZE; p++) records[i * (1 + SIZE) + 1 + p] = (i * 13 + p * 3) & 0xff;
    // The reader's NHWC layout of the same image.
    for (let c = 0; c < 3; c++) for (let px = 0; px < 1024; px++) clean[i * SIZE + px * 3 + c] = records[i * (1 + SIZE) + 1 + c * 1024 + px]!;
  }
  writeFileSync(join(dir, 'cifar-10-batches-bin', 'test_batch.bin'), records);
  return { dir, clean };
}

describe('cleanImageSource', () => {
  it('gives the images the runner drew itself, byte for byte, for an engine-corrupted dataset', async () => {
    const scenario = parseScenario({ dataset: 'fashion-mnist', model: 'm', corruptions: ['fog'], ordering: { name: 'continual', params: { samplesPerDomain: 50 } } });
    for (const seed of [0, 3]) {
      const stream = await openStream(scenario, seed);
      const cleanImages = cleanImageSource(scenario, stream, seed, {})!;
      const got = await cleanImages(64);
      expect(got.shape).toEqual([64, 28, 28, 1]);
      expect((await bytesOf(got)).equals(await bytesOf(await oldCleanImages(stream, seed, 64)))).toBe(true);
    }
    // Another seed draws other images.
    const stream = await openStream(scenario, 0);
    const a = await bytesOf(await cleanImageSource(scenario, stream, 0, {})!(16));
    const b = await bytesOf(await cleanImageSource(scenario, stream, 1, {})!(16));
    expect(a.equals(b)).toBe(false);
  });

  it('has none for pre-corrupted files, and reads the `clean` dataset when the scenario names one', async () => {
    const { dir, clean } = await fakeCifarDir();
    const base = { dataset: 'cifar10-c', model: 'm', corruptions: ['gaussian_noise'], severities: [2], batchSize: 8 };
    const without = parseScenario(base, 'c10c.json');
    const stream = await openStream(without, 0, { dataDir: dir });
    expect(cleanImageSource(without, stream, 0, { dataDir: dir })).toBeUndefined();

    const withClean = parseScenario({ ...base, clean: { dataset: 'cifar10', split: 'test' } }, 'c10c.json');
    const cleanImages = cleanImageSource(withClean, stream, 5, { dataDir: dir })!;
    const got = await cleanImages(8);
    expect(got.shape).toEqual([8, 32, 32, 3]);
    // The seeded draw of the run, from the clean CIFAR-10 images (not the corrupted ones).
    const indices = Rng.derive(5, 'clean-images').permutation(N).subarray(0, 8);
    const expected = new Uint8Array(8 * SIZE);
    indices.forEach((idx, i) => expected.set(clean.subarray(idx * SIZE, (idx + 1) * SIZE), i * SIZE));
    expect((await bytesOf(got)).equals(await bytesOf(pixelsTensor(expected, [8, 32, 32, 3])))).toBe(true);
    // More than the dataset holds: all of it, once.
    expect((await cleanImages(100)).shape[0]).toBe(N);

    // A clean dataset of another image shape is refused, naming the file and the field.
    const wrong = parseScenario({ ...base, clean: { dataset: 'fashion-mnist' } }, 'c10c.json');
    await expectCttaError(() => cleanImageSource(wrong, stream, 0, {})!(4), /c10c\.json: clean\.dataset: fashion-mnist images are 28x28x1 but the stream's are 32x32x3/);
    // CIFAR is read from --data-dir like the stream.
    await expectCttaError(() => cleanImageSource(withClean, stream, 0, {})!(4), /reads CIFAR10, which ctta cannot download.*--data-dir/);
  });
});
