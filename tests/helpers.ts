/** Shared test set-up: the wasm backend (the project's default here) and small utilities. */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setBackend } from '../src/backend/index.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export async function useWasm(): Promise<void> {
  tf.env().set('PROD', true);
  await setBackend('wasm');
}

/**
 * Runs the built CLI (`npm test` builds dist/ first) in a child process, as a user would;
 * returns exit code and output.
 */
export function runCli(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 600_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Asserts that `fn` throws a CttaError whose printed line (message + fix) matches `pattern`. */
export async function expectCttaError(fn: () => unknown, pattern: RegExp): Promise<void> {
  const { CttaError } = await import('../src/errors.js');
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof CttaError)) throw new Error(`expected a CttaError matching ${pattern}, got ${String(caught)}`);
  if (!pattern.test(caught.toLine())) throw new Error(`"${caught.toLine()}" does not match ${pattern}`);
}
