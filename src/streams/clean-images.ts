/**
 * Clean (uncorrupted) source-domain images for methods that need them before adapting (EATA's
 * Fisher information). They come from the scenario's `clean` dataset when it names one, else from
 * the stream's own dataset read without corruption; pre-corrupted files (CIFAR-10-C, ImageNet-C)
 * hold no clean images, so without `clean` there are none.
 */
import type * as tf from '@tensorflow/tfjs';
import { CttaError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { isPrecorrupted } from './datasets/index.js';
import { CLEAN_CORRUPTION, type Domain } from './orderings/index.js';
import type { Scenario } from './scenario.js';
import { engineSource, loadScenarioDataset, type DomainImageSource } from './sources.js';
import { pixelsTensor, type Stream } from './stream.js';

/** `count` clean images as [count, H, W, C] floats in [0, 1]; the caller disposes the tensor. */
export type CleanImages = (count: number) => Promise<tf.Tensor4D>;

const CLEAN_DOMAIN: Domain = { name: 'clean', corruption: CLEAN_CORRUPTION, severity: 0 };

/** Which of a source's `size` images the clean draw of `count` takes for `seed` (without replacement). */
export function cleanImageIndices(size: number, seed: number, count: number): Int32Array {
  return Rng.derive(seed, 'clean-images').permutation(size).subarray(0, Math.min(count, size));
}

/** A seeded draw without replacement from the whole source, read uncorrupted. */
async function draw(source: DomainImageSource, seed: number, count: number): Promise<tf.Tensor4D> {
  const indices = cleanImageIndices(source.labels.length, seed, count);
  const pixels = await source.read(indices, CLEAN_DOMAIN);
  return pixelsTensor(pixels, [indices.length, source.height, source.width, source.channels]);
}

/**
 * Where `stream`'s clean images come from, or undefined when it has none (pre-corrupted files
 * and no `clean` field). The same (scenario, seed) always gives the same images.
 */
export function cleanImageSource(scenario: Scenario, stream: Stream, seed: number, options: { dataDir?: string }): CleanImages | undefined {
  const clean = scenario.clean;
  if (!clean) return isPrecorrupted(scenario.dataset) ? undefined : (count) => draw(stream.source, seed, count);
  return async (count) => {
    // Loaded per call, not kept: methods ask once at init, and a kept copy would stay in memory for the whole run.
    const data = await loadScenarioDataset(scenario, clean.dataset, clean.split, options.dataDir);
    const { height, width, channels } = stream.source;
    if (data.height !== height || data.width !== width || data.channels !== channels) {
      throw new CttaError(
        `${scenario.file}: clean.dataset: ${clean.dataset} images are ${data.height}x${data.width}x${data.channels} but the stream's are ${height}x${width}x${channels}`,
        { fix: 'name a clean dataset with the same image size and channels as the stream' },
      );
    }
    return draw(engineSource(data, seed), seed, count);
  };
}
