// A scenario on the user's own images: "dataset": "image-folder" reads a class-per-folder tree of
// PNGs (grey here), streams exactly their pixels in the clean domain, and runs through the CLI.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readResults } from '../src/report/results.js';
import { loadScenario } from '../src/streams/scenario.js';
import { openStream } from '../src/streams/stream.js';
import { runCli } from './helpers.js';

const CLASSES = ['cat', 'dog', 'fox'];
const PER_CLASS = 6;
const SIDE = 16;

/** Image i of class c: a pattern no two images share. */
function pixels(c: number, i: number): Uint8Array {
  return Uint8Array.from({ length: SIDE * SIDE }, (_, p) => (c * 71 + i * 29 + p * 7) % 256);
}

async function writeFolder(root: string): Promise<void> {
  for (const [c, name] of CLASSES.entries()) {
    mkdirSync(join(root, name), { recursive: true });
    for (let i = 0; i < PER_CLASS; i++) {
      await sharp(Buffer.from(pixels(c, i)), { raw: { width: SIDE, height: SIDE, channels: 1 } }).png().toFile(join(root, name, `img-${i}.png`));
    }
  }
}

function scenario(dir: string, image: Record<string, unknown>): string {
  const file = join(dir, 'mine.json');
  writeFileSync(file, JSON.stringify({
    dataset: 'image-folder', image, model: { arch: 'resnet8', init: 'scratch' },
    corruptions: ['none', 'gaussian_noise'], severities: [3],
    ordering: { name: 'continual', params: { samplesPerDomain: 18 } }, batchSize: 6, methods: ['source', 'bn'],
  }));
  return file;
}

describe('image-folder scenarios', () => {
  it('stream the folder\'s own pixels (grey, classes = sorted folder names) and run through the CLI', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctta-folder-'));
    await writeFolder(join(dir, 'images'));
    const file = scenario(dir, { root: 'images', size: SIDE, channels: 1 });
    const stream = await openStream(loadScenario(file), 0);
    expect([stream.source.height, stream.source.width, stream.source.channels]).toEqual([SIDE, SIDE, 1]);
    expect(stream.source.classNames).toEqual(CLASSES);
    // The clean domain shows each image exactly as written (sample s = class floor(s/6), image s%6).
    const batch = await stream.batch(0);
    for (let k = 0; k < batch.samples.length; k++) {
      const s = batch.samples[k]!;
      const c = Math.floor(s / PER_CLASS);
      expect(batch.y[k]).toBe(c);
      expect(Array.from(batch.images.subarray(k * SIDE * SIDE, (k + 1) * SIDE * SIDE))).toEqual(Array.from(pixels(c, s % PER_CLASS)));
    }
    const out = join(dir, 'runs');
    const r = runCli(['run', file, '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const runs = await readResults(out);
    expect(runs.map((x) => x.header.method).sort()).toEqual(['bn', 'source']);
    for (const run of runs) expect(run.summary.n).toBe(36);
  });

  it('a missing size, root or folder is one line naming the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ctta-folder-'));
    await writeFolder(join(dir, 'images'));
    for (const [image, message] of [
      [{ root: 'images' }, /needs image\.size/],
      [{ size: SIDE }, /needs image\.root \(or --data-dir\)/],
      [{ root: 'nope', size: SIDE }, /image folder .*nope does not exist/],
      [{ root: 'images', size: SIDE, channels: 2 }, /image\.channels: expected 1 \(grey\) or 3 \(RGB\)/],
    ] as const) {
      const r = runCli(['run', scenario(dir, image), '--out', join(dir, 'runs'), '--quiet']);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
    }
  });
});
