// What the figures were measured on: CPU model and SIMD flags, cores, load, versions.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';

const SIMD = /^(sse\d?(_\d)?|ssse3|avx.*|fma4?|f16c|amx.*|neon|asimd.*|sve.*|vnni.*)$/;

export function cpuInfo() {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux: os.cpus() still names the model
  }
  const field = (name) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const flags = (field('flags') ?? field('Features') ?? '').split(/\s+/).filter((f) => SIMD.test(f));
  const id = ['cpu family', 'model', 'stepping'].map((f) => field(f));
  const detail = [
    id.every((v) => v !== undefined) ? `family ${id[0]} model ${id[1]} stepping ${id[2]}` : undefined,
    field('cpu MHz') ? `${Math.round(Number(field('cpu MHz')))} MHz` : undefined,
    field('cache size') ? `cache ${field('cache size')}` : undefined,
  ].filter(Boolean);
  return {
    model: `${field('model name') ?? os.cpus()[0]?.model ?? 'unknown'}${detail.length ? ` (${detail.join(', ')})` : ''}`,
    simd: flags.join(' ') || 'unknown',
    logicalCores: os.cpus().length,
    memoryGiB: os.totalmem() / 2 ** 30,
  };
}

export function loadAverage() {
  return os.loadavg().map((v) => v.toFixed(2)).join(' ');
}

/** Versions and backend details of this process (after setBackend). */
export async function softwareInfo(info) {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const out = {
    ctta: pkg.version,
    node: process.version,
    backend: info.name,
    tfjs: tf.version.tfjs,
    ...Object.fromEntries(Object.entries(info.versions ?? {}).filter(([k]) => k.startsWith('@tensorflow/') || k.startsWith('tfjs-backend-wasm'))),
  };
  if (info.name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    out.wasmSimd = String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    out.wasmMultithread = String(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
    out.wasmThreads = String(wasm.getThreadsCount());
  }
  return out;
}
