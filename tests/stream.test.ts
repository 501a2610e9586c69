import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadScenario, parseScenario } from '../src/streams/scenario.js';
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
