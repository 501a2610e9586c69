/**
 * Gamma (Marsaglia & Tsang) and Beta draws on ctta's seeded `Rng`, so that a run replays exactly:
 * the orderings' Dirichlet label shifts and OnPro's mixup weights both draw from here.
 */
import type { Rng } from './rng.js';

/**
 * log of a Gamma(shape, 1) draw. Marsaglia & Tsang (2000), "A simple method for generating gamma
 * variables", for shape >= 1. For shape < 1 (OnPro's Beta(0.4, 0.4)) their boost:
 * Gamma(a) = Gamma(a + 1) * U^(1/a). It is kept in log space because U^(1/a) underflows to 0 for
 * small shapes, and a Beta built from two zeros would be 0/0.
 */
export function drawLogGamma(rng: Rng, shape: number): number {
  if (!(shape > 0) || !Number.isFinite(shape)) throw new RangeError(`Gamma shape must be a positive number, got ${shape}`);
  if (shape < 1) return drawLogGamma(rng, shape + 1) + Math.log(rng.floatOpen0()) / shape;
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.normal();
    const root = 1 + c * x;
    // v = (1 + c x)^3 must be positive for the density transform; redraw otherwise.
    if (root <= 0) continue;
    const v = root * root * root;
    const u = rng.floatOpen0();
    // The cheap squeeze accepts ~98% of draws without the logarithms of the exact test. (The
    // products are written as the orderings always computed them: the same draws, bit for bit.)
    if (u < 1 - 0.0331 * x * x * x * x) return Math.log(d) + Math.log(v);
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return Math.log(d) + Math.log(v);
  }
}

/** A Gamma(shape, 1) draw (mean `shape`, variance `shape`). */
export function drawGamma(rng: Rng, shape: number): number {
  return Math.exp(drawLogGamma(rng, shape));
}

/**
 * A Beta(a, b) draw as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). Written as
 * 1 / (1 + exp(log Y - log X)) so that two tiny Gammas (likely with shapes below 1) still give a
 * value in [0, 1] instead of 0/0. X is drawn before Y.
 */
export function drawBeta(rng: Rng, a: number, b: number): number {
  const logX = drawLogGamma(rng, a);
  const logY = drawLogGamma(rng, b);
  return 1 / (1 + Math.exp(logY - logX));
}
