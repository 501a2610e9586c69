/**
 * A stream's batches computed on a worker thread (batch-worker-thread.ts), so reading and
 * corrupting the next batches overlaps with the model's work on the current one instead of adding
 * to it. The worker opens the same stream (`openStream` with the same scenario, seed and data
 * folder; `Stream.batch(k)` is a pure function of them) and serves batch k on request; the pixels
 * come back as transferred buffers, not copies. Batches are yielded in order and byte-identical
 * to `stream.batch(k)`.
 *
 * A data error in the worker (a CttaError: a missing or corrupt file) is thrown here as the same
 * CttaError, when the consumer reaches the batch it concerns. Anything else the worker cannot do
 * (start, load its modules, build the same stream, e.g. because a plug-in registered a dataset or
 * corruption in this thread only) is not the data's fault: the batches are then computed here
 * (`stream.batches(k)`), silently, from the first one the worker did not deliver.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { CttaError } from '../errors.js';
import { registrationCount } from '../util/registry.js';
import type { Stream, StreamBatch } from './stream.js';

/** Batches requested beyond the one being consumed: the worker always has the next one to do. */
const AHEAD = 2;
/**
 * Starting a worker costs about a second of CPU (its imports, tfjs among them, and the data's
 * loading); on a busy machine a stream of a few dozen batches (~20 ms each) does not repay it.
 */
const MIN_BATCHES = 64;

export interface PrefetchOptions {
  /** The data folder `stream` was opened with (`openStream`'s `dataDir`). */
  dataDir?: string;
  /** Told why the batches are computed on this thread after all (tests, debugging). */
  onFallback?: (reason: string) => void;
  /** Told the worker once it is started (tests: its 'exit' event). */
  onWorker?: (worker: Worker) => void;
  /** Wait for the worker to open its stream rather than compute the first batches here (tests). */
  waitForWorker?: boolean;
  /** Fewer batches from `from` on are computed here, without a worker (default MIN_BATCHES). */
  minBatches?: number;
}

/** A worker's error, as it crosses the thread boundary. */
export interface WorkerError {
  message: string;
  fix?: string;
  exitCode?: number;
  /** A CttaError (bad data, which the main thread would hit too); otherwise a failure of the worker. */
  ctta: boolean;
}

export type WorkerReply =
  | { type: 'ready'; identity: string }
  | { type: 'batch'; batch: StreamBatch }
  | { type: 'error'; k?: number; error: WorkerError }
  | { type: 'gone'; reason: string };

/**
 * What a worker must agree on with this thread before its batches are used: the stream's layout
 * (order, domains, tasks, labels, plan) and the number of registered datasets, corruptions and
 * orderings. Registrations beyond ctta's built-ins happen in one thread only (a worker imports
 * the built-ins alone), and a re-registered corruption would change pixels but not the layout.
 */
export function streamIdentity(stream: Stream): string {
  const h = createHash('sha256');
  const { ordering: o, source: s } = stream;
  for (const a of [o.order, o.domain, o.task, s.labels]) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const registrations = ['datasets', 'corruptions', 'orderings'].map((r) => registrationCount(`ctta.${r}.registry`));
  h.update(JSON.stringify([stream.plan, o.domains, o.resetAt ?? null, [s.height, s.width, s.channels], registrations]));
  return h.digest('hex');
}

/** The buffers a batch owns (every array of `Stream.batch` is a fresh one): moved, not copied. */
export function batchBuffers(b: StreamBatch): ArrayBuffer[] {
  return [b.images, b.samples, b.y, b.domain, b.task].map((a) => a.buffer as ArrayBuffer);
}

/** Starts the batch worker; throws when it cannot (e.g. a scenario that does not clone). */
function startWorker(stream: Stream, dataDir: string | undefined): Worker {
  const workerData = { scenario: stream.scenario, seed: stream.seed, dataDir };
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(fromSource ? './batch-worker-thread.ts' : './batch-worker-thread.js', import.meta.url);
  if (!fromSource) return new Worker(url, { workerData });
  // From TypeScript sources (tests) the worker registers tsx's loader itself, as in
  // eval/worker-pool.ts: loader flags of the main thread do not reach worker threads on Node 20.
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** Replies by key (batch index, or 'ready' for the opening); 'gone' once the worker failed or exited. */
function listen(worker: Worker) {
  const replies = new Map<number | 'ready', WorkerReply>();
  let gone: WorkerReply | undefined;
  let wake: (() => void) | undefined;
  worker.on('message', (m: WorkerReply) => {
    replies.set(m.type === 'batch' ? m.batch.index : m.type === 'error' && m.k !== undefined ? m.k : 'ready', m);
    wake?.();
  });
  worker.on('error', (err) => {
    gone ??= { type: 'gone', reason: `the batch worker failed: ${String(err?.message ?? err).split('\n')[0]}` };
    wake?.();
  });
  worker.on('exit', (code) => {
    gone ??= { type: 'gone', reason: `the batch worker exited (code ${code})` };
    wake?.();
  });
  const take = (key: number | 'ready'): WorkerReply | undefined => {
    const reply = replies.get(key) ?? gone;
    replies.delete(key);
    return reply;
  };
  return {
    /** The reply for `key` if it is there, without waiting. */
    take,
    async wait(key: number | 'ready'): Promise<WorkerReply> {
      // Referenced only while this thread waits for it: an idle worker of an abandoned generator
      // must not keep the process alive, a busy one must (this thread may have nothing else to do).
      worker.ref();
      try {
        while (!replies.has(key) && !gone) await new Promise<void>((r) => (wake = r));
      } finally {
        worker.unref();
      }
      return take(key)!;
    },
  };
}

/** The reason to fall back to this thread, or undefined if `reply` is usable; data errors throw. */
function problem(reply: WorkerReply): string | undefined {
  if (reply.type === 'gone') return reply.reason;
  if (reply.type !== 'error') return undefined;
  const e = reply.error;
  if (e.ctta) throw new CttaError(e.message, { fix: e.fix, exitCode: e.exitCode });
  return `the batch worker failed${reply.k !== undefined ? ` at batch ${reply.k}` : ''}: ${e.message}`;
}

/**
 * The batches of `stream` from `from` on, in order, computed on a worker thread with AHEAD
 * batches requested ahead (a short stream: here, as `stream.batches`). Until the worker has opened its stream (its imports and the data's
 * loading take a second or more), this thread computes the batches itself, so starting the worker
 * never delays the run. The worker is terminated when the generator ends, fails or is returned
 * early (a consumer's `break` or throw in `for await`).
 */
export async function* prefetchedBatches(stream: Stream, from = 0, options: PrefetchOptions = {}): AsyncGenerator<StreamBatch> {
  const n = stream.numBatches;
  if (n - from < (options.minBatches ?? MIN_BATCHES)) {
    yield* stream.batches(from);
    return;
  }
  let worker: Worker;
  try {
    worker = startWorker(stream, options.dataDir);
  } catch (err) {
    options.onFallback?.(`the batch worker cannot start: ${String((err as Error)?.message ?? err).split('\n')[0]}`);
    yield* stream.batches(from);
    return;
  }
  worker.unref();
  options.onWorker?.(worker);
  const replies = listen(worker);
  let k = from;
  let why: string | undefined;
  try {
    let ready = options.waitForWorker ? await replies.wait('ready') : replies.take('ready');
    for (; !ready && k < n; ready = replies.take('ready')) yield await stream.batch(k++);
    why = ready && problem(ready);
    if (!why && ready?.type === 'ready' && ready.identity !== streamIdentity(stream)) why = 'the batch worker built a different stream';
    let requested = k;
    while (k < n && !why) {
      for (; requested <= Math.min(k + AHEAD, n - 1); requested++) worker.postMessage(requested);
      const r = await replies.wait(k);
      why = problem(r);
      if (!why && r.type === 'batch') {
        yield r.batch;
        k++;
      }
    }
  } finally {
    await worker.terminate();
  }
  if (why) {
    options.onFallback?.(why);
    yield* stream.batches(k);
  }
}
