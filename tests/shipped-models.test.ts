/**
 * The shipped checkpoints can be reproduced from their manifests: each records the command that
 * trained it, the commit of the code that ran it (a clean tree: a dirty one cannot be rebuilt
 * from its commit) and the sha256 of its files; a ViDA warm-up records the backbone it was
 * trained on, which must be the shipped backbone.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const manifestOf = (name: string) => JSON.parse(readFileSync(join(ROOT, 'models', name, 'manifest.json'), 'utf8'));

/** Every shipped checkpoint (fmnist-resnet8-vida is the warm-up of fmnist-resnet8's adapters). */
const REPRODUCIBLE = ['fmnist-resnet8', 'fmnist-resnet8-base5', 'fmnist-resnet8-vida'];

describe('shipped checkpoints', () => {
  it.each(REPRODUCIBLE)('%s records the command, the clean commit and its files', (name) => {
    const m = manifestOf(name);
    expect(m.command).toMatch(new RegExp(`^ctta pretrain .*--out models/${name}( |$)`));
    expect(m.createdWith.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(m.createdWith.dirty).toBe(false);
    expect(sha256(join(ROOT, 'models', name, 'weights.bin'))).toBe(m.weightsSha256);
    expect(sha256(join(ROOT, 'models', name, 'model.json'))).toBe(m.modelJsonSha256);
  });

  it('the ViDA warm-up was trained on the shipped backbone', () => {
    expect(manifestOf('fmnist-resnet8-vida').training.warmup.baseWeightsSha256).toBe(manifestOf('fmnist-resnet8').weightsSha256);
  });
});
