import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { corruptBatch, registerCorruption } from '../src/streams/corruptions/index.js';
import { registerDataset, type ImageDataset } from '../src/streams/datasets/index.js';
import { continual, registerOrdering } from '../src/streams/orderings/index.js';
import { loadScenario, parseScenario, scenarioDatasetNames } from '../src/streams/scenario.js';
import { batchTensor, openStream, planBatches } from '../src/streams/stream.js';
import { expectCttaError, useWasm } from './helpers.js';

beforeAll(useWasm);

const small = (over: Record<string, unknown> = {}) =>
  parseScenario({
    dataset: 'fashion-mnist',
    model: 'models/fmnist-resnet8',
    corruptions: ['gaussian_noise', 'jpeg_compression', 'frost'],
    severities: [5],
    ordering: { name: 'continual', params: { samplesPerDomain: 100 } },
    batchSize: 32,
    ...over,
  });

async function collect(scenario: ReturnType<typeof small>, seed: number) {
  const stream = await openStream(scenario, seed);
  const out = [];
  for await (const b of stream.batches()) out.push(b);
  return { stream, batches: out };
}

describe('streams', () => {
  it('are byte-identical for the same scenario and seed, and differ for another seed', async () => {
    const a = await collect(small(), 1);
    const b = await collect(small(), 1);
    const c = await collect(small(), 2);
    expect(a.batches.length).toBe(b.batches.length);
    a.batches.forEach((x, i) => {
      expect(Buffer.from(x.images).equals(Buffer.from(b.batches[i]!.images))).toBe(true);
      expect(Array.from(x.y)).toEqual(Array.from(b.batches[i]!.y));
    });
    expect(Buffer.from(a.batches[0]!.images).equals(Buffer.from(c.batches[0]!.images))).toBe(false);
  });

  it('cut batches at domain boundaries, cover every position once, and label correctly', async () => {
    const { stream, batches } = await collect(small(), 0);
    // 100 per domain, batch 32 -> 32,32,32,4 per domain.
    expect(batches.map((b) => b.y.length)).toEqual([32, 32, 32, 4, 32, 32, 32, 4, 32, 32, 32, 4]);
    expect(batches.every((b) => new Set(b.domain).size === 1)).toBe(true);
    const positions = batches.flatMap((b) => Array.from({ length: b.end - b.start }, (_, i) => b.start + i));
    expect(positions).toEqual(Array.from({ length: 300 }, (_, i) => i));
    for (const b of batches) b.samples.forEach((s, i) => expect(b.y[i]).toBe(stream.source.labels[s]));
    // Corruption changes the pixels: the clean image differs from what the stream shows.
    const clean = (await stream.source.read(batches[0]!.samples.slice(0, 1), { corruption: 'none', severity: 0, name: 'clean' }));
    expect(Buffer.from(clean).equals(Buffer.from(batches[0]!.images.subarray(0, 784)))).toBe(false);
  });

  it('mixed streams keep several domains in one batch', async () => {
    const s = small({ ordering: { name: 'mixed', params: { samplesPerDomain: 50 } } });
    const { stream, batches } = await collect(s, 0);
    expect(planBatches(stream.ordering, 32).length).toBe(Math.ceil(150 / 32));
    expect(new Set(batches[0]!.domain).size).toBeGreaterThan(1);
  });

  it('turn batches into float tensors in [0,1] without leaking', async () => {
    const { batches } = await collect(small(), 0);
    const before = tf.memory().numTensors;
    const x = batchTensor(batches[0]!);
    expect(x.shape).toEqual([32, 28, 28, 1]);
    const max = tf.tidy(() => x.max().dataSync()[0]!);
    expect(max).toBeLessThanOrEqual(1);
    expect(x.dtype).toBe('float32');
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('scenario files', () => {
  it('every shipped scenario loads, and the main job has 15 corruptions at severity 5', () => {
    for (const name of ['fmnist-c-continual', 'fmnist-c-gradual', 'fmnist-c-mixed', 'fmnist-c-dirichlet', 'fmnist-c-dirichlet-sorted', 'fmnist-c-imbalanced', 'fmnist-class-incremental', 'cifar10c-continual', 'cifar100c-continual', 'imagenetc-continual']) {
      const s = loadScenario(name);
      expect(s.hash).toMatch(/^[0-9a-f]{64}$/);
    }
    const main = loadScenario('fmnist-c-continual');
    expect(main.domains).toHaveLength(15);
    expect(main.domains.every((d) => d.severity === 5)).toBe(true);
  });

  it('bad scenarios name the file, the field and the expected value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctta-scn-'));
    const write = (name: string, body: unknown) => {
      const f = join(dir, `${name}.json`);
      writeFileSync(f, typeof body === 'string' ? body : JSON.stringify(body));
      return f;
    };
    const base = { dataset: 'fashion-mnist', model: 'm', corruptions: ['fog'] };
    await expectCttaError(() => loadScenario(write('a', { ...base, corruptions: ['fogg'] })), /a\.json: corruptions\[0\]: unknown corruption "fogg"; expected one of gaussian_noise/);
    await expectCttaError(() => loadScenario(write('b', { ...base, severities: [7] })), /b\.json: severities\[0\]: expected a severity 1-5/);
    await expectCttaError(() => loadScenario(write('c', { ...base, ordering: { name: 'sorted' } })), /c\.json: ordering\.name: unknown ordering "sorted"; expected one of continual/);
    await expectCttaError(() => loadScenario(write('d', { ...base, batchsize: 3 })), /d\.json: \(top level\): unknown field\(s\) batchsize/);
    await expectCttaError(() => loadScenario(write('e', '{oops')), /e\.json: not valid JSON/);
    await expectCttaError(() => loadScenario('no-such-scenario'), /scenario not found: no-such-scenario.*ctta list scenarios/);
    // Ordering parameters are checked when the stream is built, naming the parameter.
    await expectCttaError(async () => openStream(parseScenario({ ...base, ordering: { name: 'dirichlet', params: { delta: -1 } } }, 'f.json'), 0), /delta/);
  });

  it('the hash changes with what determines the stream, not with seeds or methods', () => {
    expect(small().hash).toBe(small({ seeds: [5], methods: ['bn'] }).hash);
    expect(small().hash).not.toBe(small({ batchSize: 16 }).hash);
  });
});

/** 12 synthetic 8x8 grey images of 3 classes (class k is brighter with k), labelled 0,1,2,0,... */
function tinyDataset(split: 'train' | 'test'): ImageDataset {
  const n = 12;
  const images = new Uint8Array(n * 64);
  for (let i = 0; i < n; i++) for (let p = 0; p < 64; p++) images[i * 64 + p] = ((i % 3) * 80 + p * 2 + i) & 0xff;
  return { name: 'tiny-shapes', split, images, labels: Int32Array.from({ length: n }, (_, i) => i % 3), n, height: 8, width: 8, channels: 1, classNames: ['dark', 'mid', 'bright'], source: '(memory)' };
}

describe('registered datasets in scenario files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctta-scn-reg-'));
  const write = (name: string, body: unknown) => {
    const f = join(dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(body));
    return f;
  };
  const scenario = { dataset: 'tiny-shapes', model: 'm', corruptions: ['gaussian_noise', 'contrast'], severities: [3], ordering: { name: 'continual', params: {} }, batchSize: 5 };

  it('are unknown until registered, with the known names in the message', async () => {
    const f = write('early', scenario);
    await expectCttaError(() => loadScenario(f), /early\.json: dataset: unknown dataset "tiny-shapes"; expected one of cifar10, cifar10-c, cifar100, cifar100-c, fashion-mnist, image-folder, imagenet-c .*registerDataset/);
  });

  it('stream their images, corrupted by the engine', async () => {
    registerDataset({ name: 'tiny-shapes', load: async (split) => tinyDataset(split), defaults: 'cifar10' });
    expect(scenarioDatasetNames()).toContain('tiny-shapes');
    const s = loadScenario(write('tiny', scenario));
    expect(s.dataset).toBe('tiny-shapes');
    const stream = await openStream(s, 2);
    const batches = [];
    for await (const b of stream.batches()) batches.push(b);
    // 12 images per domain in batches of 5, cut at the domain boundary.
    expect(batches.map((b) => b.y.length)).toEqual([5, 5, 2, 5, 5, 2]);
    expect(batches[0]!.shape).toEqual([5, 8, 8, 1]);
    const clean = tinyDataset('test');
    for (const b of batches) {
      const domain = stream.ordering.domains[b.domain[0]!]!;
      const raw = new Uint8Array(b.samples.length * 64);
      b.samples.forEach((idx, i) => raw.set(clean.images.subarray(idx * 64, (idx + 1) * 64), i * 64));
      const expected = await corruptBatch(raw, b.samples.length, 8, 8, 1, domain.corruption, domain.severity, { seed: 2, startIndex: 0, indices: b.samples });
      expect(Buffer.from(b.images).equals(Buffer.from(expected))).toBe(true);
      expect(Buffer.from(b.images).equals(Buffer.from(raw))).toBe(false);
      expect(Array.from(b.y)).toEqual(Array.from(b.samples, (i) => i % 3));
    }
  });

  it('name where clean images come from, checked when the file is read', async () => {
    const base = { ...scenario, dataset: 'cifar10-c' };
    expect(loadScenario(write('clean-ok', { ...base, clean: { dataset: 'tiny-shapes' } })).clean).toEqual({ dataset: 'tiny-shapes', split: 'test' });
    await expectCttaError(() => loadScenario(write('clean-a', { ...base, clean: { dataset: 'cifar10-c' } })), /clean-a\.json: clean\.dataset: "cifar10-c" holds corrupted images; expected a dataset of clean images: cifar10, /);
    await expectCttaError(() => loadScenario(write('clean-b', { ...base, clean: { dataset: 'cifar11' } })), /clean-b\.json: clean\.dataset: unknown dataset "cifar11"; expected one of cifar10, cifar100, fashion-mnist/);
    await expectCttaError(() => loadScenario(write('clean-c', { ...base, clean: { dataset: 'cifar10', split: 'val' } })), /clean-c\.json: clean\.split: /);
    expect(loadScenario('cifar10c-continual').clean).toEqual({ dataset: 'cifar10', split: 'test' });
    expect(loadScenario('cifar100c-continual').clean).toEqual({ dataset: 'cifar100', split: 'test' });
  });

  it('take registered corruptions and orderings too', async () => {
    registerCorruption({ name: 'invert', apply: (img) => ({ ...img, data: img.data.map((v) => 255 - v) }) });
    registerOrdering({ name: 'plain', create: (src, domains, params, seed) => ({ ...continual(src, domains, params as undefined, seed), kind: 'plain' }) });
    const s = loadScenario(write('custom', { ...scenario, corruptions: ['invert'], ordering: { name: 'plain' } }));
    const stream = await openStream(s, 0);
    const first = await stream.batch(0);
    const clean = tinyDataset('test').images;
    expect(first.images[0]).toBe(255 - clean[first.samples[0]! * 64]!);
    expect(stream.ordering.kind).toBe('plain');
  });
});
