/**
 * Companion checkpoints of a scenario's model, loaded for methods (which never read files):
 * ViDA's warmed-up adapters live beside the model as `<model>-vida`. A companion must carry the
 * very same backbone, bit for bit, or its adapters were trained for another model.
 *
 * A companion is a checkpoint folder of its own and is held to it like any model: `loadModel`
 * refuses a weights or adapters path of the companion that leaves the companion's folder (absolute,
 * `..`, or a symlink resolving outside), checks it before reading anything, and verifies the
 * companion manifest's sha256s (model.json, weights, adapters). The companion's folder itself is
 * the user's choice (`<model>-<kind>` beside the model, or the method option naming one).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { CttaError } from '../errors.js';
import { loadModel, manifestModelHash } from '../models/checkpoint.js';
import type { Network } from '../models/network.js';

/** Where a companion of kind `kind` is looked for when the method's option names none. */
export function companionPath(modelPath: string, kind: string): string {
  return `${modelPath.replace(/[/\\]+$/, '')}-${kind}`;
}

/**
 * Loads the companion and checks it shares `network`'s backbone; the caller disposes the network.
 * `hash` is its model hash: results record it, since the companion shapes the numbers too.
 */
export async function loadCompanion(network: Network, modelPath: string, kind: string, path?: string): Promise<{ network: Network; hash: string }> {
  const file = path ?? companionPath(modelPath, kind);
  const make = `ctta pretrain --adapters ${kind} --from ${modelPath} --out ${file}`;
  if (!existsSync(file)) {
    throw new CttaError(`${kind} needs a checkpoint warmed up on source data, and ${file} does not exist`, {
      fix: `create it with \`${make}\`, point --set <method>.warmup=<dir> at one, or use --set <method>.warmup=none (no warm-up)`,
    });
  }
  // Paths inside the companion are contained and its hashes verified by loadModel (see above).
  const { network: companion, manifest, hash } = await loadModel(file);
  if (!manifest) {
    companion.dispose();
    throw new CttaError(`${file} is not a ctta checkpoint (no manifest.json), so it holds no ${kind} warm-up`, {
      fix: `create one with \`${make}\``,
    });
  }
  const mine = network.namedWeights();
  for (const w of companion.model.weights) {
    const name = w.originalName;
    const theirs = w.read();
    const own = mine.get(name);
    const same = own !== undefined && own.shape.join() === theirs.shape.join() && tf.tidy(() => tf.all(tf.equal(own, theirs)).dataSync()[0] === 1);
    if (!same) {
      companion.dispose();
      throw new CttaError(`${file} was warmed up on a different backbone (weight ${name} differs from the scenario's model)`, {
        fix: `warm it up for this model: ${make}`,
      });
    }
  }
  return { network: companion, hash };
}

/**
 * The model hash of the companion a finished run used (recorded in its header), as it is now:
 * undefined if it is gone or unreadable. Read from its manifest, without loading the weights.
 */
export function currentCompanionHash(modelPath: string, kind: string, path?: string): string | undefined {
  return manifestModelHash(path ?? companionPath(modelPath, kind));
}
