/**
 * The batch worker thread (see batch-worker.ts): opens the stream of (scenario, seed, dataDir) as
 * the main thread did, then computes each batch index it is sent, one at a time in the order
 * asked, and posts it back with its buffers transferred. Errors go back as their parts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CttaError } from '../errors.js';
import { batchBuffers, streamIdentity, type WorkerError, type WorkerReply } from './batch-worker.js';
import type { Scenario } from './scenario.js';
import { openStream } from './stream.js';

const { scenario, seed, dataDir } = workerData as { scenario: Scenario; seed: number; dataDir?: string };
const port = parentPort!;
const send = (reply: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

function describe(err: unknown): WorkerError {
  if (err instanceof CttaError) return { message: err.message, fix: err.fix, exitCode: err.exitCode, ctta: true };
  return { message: String((err as Error)?.message ?? err).split('\n')[0]!, ctta: false };
}

try {
  const stream = await openStream(scenario, seed, { dataDir });
  send({ type: 'ready', identity: streamIdentity(stream) });
  // Requests are served one after another: the worker is a second core, not several.
  let queue = Promise.resolve();
  port.on('message', (k: number) => {
    queue = queue.then(() =>
      stream.batch(k).then(
        (batch) => send({ type: 'batch', batch }, batchBuffers(batch)),
        (err: unknown) => send({ type: 'error', k, error: describe(err) }),
      ),
    );
  });
} catch (err) {
  send({ type: 'error', error: describe(err) });
}
