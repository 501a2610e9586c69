/**
 * Batches computed on a worker thread (src/streams/batch-worker.ts): the same bytes as
 * `stream.batch(k)` on the main thread, in order, from any batch; the worker ends with the loop
 * (also when it is left early); a data error reads as the main thread's; a run gives the same
 * predictions either way; a stream the worker cannot rebuild is computed here instead.
 */
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runScenario } from '../src/eval/runner.js';
import { prefetchedBatches, type PrefetchOptions } from '../src/streams/batch-worker.js';
import { registerCorruption } from '../src/streams/corruptions/index.js';
import { writeIdx } from '../src/streams/datasets/index.js';
import { encodeNpy, writeNpy } from '../src/streams/datasets/readers/index.js';
import { loadScenario, parseScenario, type Scenario } from '../src/streams/scenario.js';
import { openStream, Stream, type StreamBatch } from '../src/streams/stream.js';
import { rejection, ROOT, useWasm } from './helpers.js';

let root: string;
beforeAll(async () => {
  await useWasm();
  root = await mkdtemp(join(tmpdir(), 'ctta-stream-worker-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

// The main job's 15 corruptions (noise, blurs, weather with overlay files, sharp's JPEG), few images each.
const continual15 = (): Scenario => {
  const s = loadScenario('fmnist-c-continual');
  return { ...s, batchSize: 16, ordering: { name: 'continual', params: { samplesPerDomain: 24 } } };
};

/** Every field of a batch, arrays as bytes, for exact comparison. */
function bytes(b: StreamBatch) {
  const hex = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
  return { ...b, images: hex(b.images), samples: hex(b.samples), y: hex(b.y), domain: hex(b.domain), task: hex(b.task) };
}

/**
 * The worker path's batches from `from`, all from the worker (the tests wait for it to start
 * rather than compute the first batches here), failing the test if it fell back to the main thread.
 */
async function viaWorker(stream: Stream, from: number, options: PrefetchOptions = {}): Promise<StreamBatch[]> {
  const out: StreamBatch[] = [];
  const fail = (why: string) => expect.fail(`fell back: ${why}`);
  for await (const b of prefetchedBatches(stream, from, { waitForWorker: true, minBatches: 1, onFallback: fail, ...options })) out.push(b);
  return out;
}

async function expectSameAsMain(stream: Stream, got: StreamBatch[], from: number): Promise<void> {
  expect(got.map((b) => b.index)).toEqual(Array.from({ length: stream.numBatches - from }, (_, i) => from + i));
  for (const b of got) expect(bytes(b)).toEqual(bytes(await stream.batch(b.index)));
}

describe('batches from a worker thread', () => {
  it('are byte-identical to stream.batch(k), from 0 and from a later batch', async () => {
    const stream = await openStream(continual15(), 3);
    expect(stream.numBatches).toBe(30);
    await expectSameAsMain(stream, await viaWorker(stream, 0), 0);
    await expectSameAsMain(stream, await viaWorker(stream, 17), 17);
    expect(await viaWorker(stream, 30)).toEqual([]);
    // A short stream (under 64 batches by default) is computed here: no worker is started.
    let started = false;
    for await (const _ of prefetchedBatches(stream, 0, { onWorker: () => (started = true) })) break;
    expect(started).toBe(false);
  });

  it('are byte-identical when the first ones are computed here while the worker starts', async () => {
    const stream = await openStream(continual15(), 4);
    let worker: Worker | undefined;
    let fromWorker = 0;
    const onWorker = (w: Worker) => {
      worker = w;
      w.on('message', (m: { type: string }) => void (m.type === 'batch' && fromWorker++));
    };
    const got: StreamBatch[] = [];
    for await (const b of prefetchedBatches(stream, 2, { minBatches: 1, onWorker, onFallback: (why) => expect.fail(why) })) {
      got.push(b);
      // After the first batch, wait for the worker's first message (its stream is open).
      if (got.length === 1) await new Promise((r) => worker!.once('message', r));
    }
    expect(fromWorker).toBeGreaterThan(0);
    expect(fromWorker).toBeLessThan(got.length);
    await expectSameAsMain(stream, got, 2);
  });

  it('are byte-identical for a held-out stream (built from a seeded split) with a reset ordering', async () => {
    const heldOut = loadScenario('fmnist-domain-incremental');
    const scenario = { ...heldOut, batchSize: 32, ordering: { name: 'domain_incremental', params: { samplesPerDomain: 40, evalPerTask: 10 } } };
    const stream = await openStream(scenario, 1);
    await expectSameAsMain(stream, await viaWorker(stream, 0), 0);
    const resets = parseScenario({ dataset: 'fashion-mnist', model: 'm', corruptions: ['fog', 'snow'], ordering: { name: 'reset_each_shift', params: { samplesPerDomain: 20 } }, batchSize: 8 });
    const resetStream = await openStream(resets, 0);
    const got = await viaWorker(resetStream, 0);
    expect(got.some((b) => b.reset)).toBe(true);
    await expectSameAsMain(resetStream, got, 0);
  });

  it('end with the loop: leaving it early terminates the worker', async () => {
    const stream = await openStream(continual15(), 0);
    let worker: Worker | undefined;
    let exited = false;
    const batches = prefetchedBatches(stream, 0, { waitForWorker: true, minBatches: 1, onWorker: (w) => ((worker = w), w.once('exit', () => (exited = true))) });
    let seen = 0;
    for await (const b of batches) {
      expect(b.index).toBe(seen++);
      if (seen === 2) break;
    }
    expect(worker).toBeDefined();
    expect(exited).toBe(true); // the generator's return awaited the termination
    expect(await batches.next()).toEqual({ done: true, value: undefined });
    // A throw in the loop body ends it the same way.
    let thrownExit = false;
    const failing = async () => {
      for await (const _ of prefetchedBatches(stream, 5, { waitForWorker: true, minBatches: 1, onWorker: (w) => w.once('exit', () => (thrownExit = true)) })) throw new Error('consumer failed');
    };
    await expect(failing()).rejects.toThrow('consumer failed');
    expect(thrownExit).toBe(true);
  });

  it('a data error in the worker is the CttaError the main thread gives', async () => {
    // The stream is opened here from the good copy; the worker is pointed at a truncated one.
    const bad = join(root, 'fmnist-truncated');
    await mkdir(bad, { recursive: true });
    await writeIdx(join(bad, 't10k-labels-idx1-ubyte'), [100], Uint8Array.from({ length: 100 }, (_, i) => i % 10), { gzip: false });
    await writeIdx(join(bad, 't10k-images-idx3-ubyte'), [100, 28, 28], new Uint8Array(100 * 784), { gzip: false });
    await truncate(join(bad, 't10k-images-idx3-ubyte'), 16 + 50 * 784);
    const scenario = continual15();
    const main = await rejection(openStream(scenario, 0, { dataDir: bad }));
    const stream = await openStream(scenario, 0);
    const viaThread = await rejection(viaWorker(stream, 0, { dataDir: bad }));
    expect({ line: viaThread.toLine(), exitCode: viaThread.exitCode }).toEqual({ line: main.toLine(), exitCode: main.exitCode });

    // An error at batch k (CIFAR-10-C has no clean domain): batches before it arrive, then the same error.
    const dataDir = join(root, 'c10c');
    const PER = 4;
    await mkdir(join(dataDir, 'CIFAR-10-C'), { recursive: true });
    await writeNpy(join(dataDir, 'CIFAR-10-C', 'labels.npy'), Int32Array.from({ length: 5 * PER }, (_, i) => i % 10), [5 * PER]);
    await writeFile(join(dataDir, 'CIFAR-10-C', 'fog.npy'), encodeNpy(Uint8Array.from({ length: 5 * PER * 3072 }, (_, i) => i % 251), [5 * PER, 32, 32, 3]));
    const c10c = parseScenario({ dataset: 'cifar10-c', model: 'm', domains: [{ corruption: 'fog', severity: 2 }, { corruption: 'none' }], batchSize: 2 }, 'c10c.json');
    const cStream = await openStream(c10c, 0, { dataDir });
    const collect = async (it: AsyncGenerator<StreamBatch>) => {
      const got: StreamBatch[] = [];
      const err = await rejection((async () => {
        for await (const b of it) got.push(b);
      })());
      return { got: got.map(bytes), line: err.toLine(), exitCode: err.exitCode };
    };
    const expected = await collect(cStream.batches());
    expect(expected.got.length).toBe(2);
    expect(await collect(prefetchedBatches(cStream, 0, { dataDir, waitForWorker: true, minBatches: 1, onFallback: (why) => expect.fail(why) }))).toEqual(expected);
    // Without waiting, the first batches may be computed here while the worker starts: the same.
    expect(await collect(prefetchedBatches(cStream, 0, { dataDir, minBatches: 1, onFallback: (why) => expect.fail(why) }))).toEqual(expected);
  });

  it('give a run the same predictions as batches computed on the main thread', async () => {
    const scenario = parseScenario({
      dataset: 'fashion-mnist',
      model: join(ROOT, 'models/fmnist-resnet8'),
      corruptions: ['gaussian_noise', 'defocus_blur', 'frost', 'jpeg_compression'],
      ordering: { name: 'continual', params: { samplesPerDomain: 256 } },
      batchSize: 16,
    });
    const run = (streamWorker: boolean) => runScenario({ scenario, method: 'bn', seed: 0, streamWorker });
    // The run computes batches itself until the worker has started: slowed down here (200 ms a
    // batch), the worker is sure to serve some of them, which its batch requests show.
    const batch = Stream.prototype.batch;
    const slow = vi.spyOn(Stream.prototype, 'batch').mockImplementation(async function (this: Stream, k: number) {
      await new Promise((r) => setTimeout(r, 200));
      return batch.call(this, k);
    });
    const requests = vi.spyOn(Worker.prototype, 'postMessage');
    const on = await run(true);
    const used = requests.mock.calls.length;
    requests.mockRestore();
    slow.mockRestore();
    expect(used).toBeGreaterThan(0);
    const off = await run(false);
    expect(on.predictions.length).toBe(1024); // 64 batches: the run's default uses a worker
    expect(Buffer.from(on.predictions.buffer).equals(Buffer.from(off.predictions.buffer))).toBe(true);
    expect(on.summary.leakedTensors).toBe(0);
  });

  // Last: the registration stays for the rest of this file.
  it('are computed on the main thread when the worker cannot rebuild the stream (a corruption registered here only)', async () => {
    registerCorruption({ name: 'test_invert', apply: (img) => ({ ...img, data: img.data.map((v) => 255 - v) }) });
    const scenario = parseScenario({ dataset: 'fashion-mnist', model: 'm', corruptions: ['test_invert', 'fog'], ordering: { name: 'continual', params: { samplesPerDomain: 20 } }, batchSize: 8 });
    const stream = await openStream(scenario, 0);
    const reasons: string[] = [];
    const got: StreamBatch[] = [];
    for await (const b of prefetchedBatches(stream, 1, { waitForWorker: true, minBatches: 1, onFallback: (why) => reasons.push(why) })) got.push(b);
    expect(reasons).toEqual(['the batch worker built a different stream']);
    await expectSameAsMain(stream, got, 1);
  });
});
