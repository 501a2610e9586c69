/** Shared types of the corruption engine. */

import type { CorruptionRng } from './rng.js';

/** An HxWxC uint8 image, row-major, channels interleaved (HWC), C = 1 (grey) or 3 (RGB). */
export interface Image {
  data: Uint8Array;
  height: number;
  width: number;
  channels: number;
}

/** Severity level 1 (mildest) .. 5 (strongest), as in ImageNet-C / CIFAR-10-C. */
export type Severity = 1 | 2 | 3 | 4 | 5;

/**
 * One corruption: a pure function of the image, the severity and a seeded random stream.
 * It never mutates its input. Corruptions that call sharp (jpeg, frost's overlay loading) are
 * async; the others return synchronously and the registry wraps them.
 */
export type CorruptionFn = (img: Image, severity: Severity, rng: CorruptionRng) => Image | Promise<Image>;
