/**
 * dirichlet: label-correlated (temporally non-i.i.d.) order within each domain, the protocol of
 * NOTE (Gong et al., NeurIPS 2022) that RoTTA (Yuan et al., CVPR 2023) reuses. Domains follow
 * one another as in `continual`; inside a domain:
 *
 *   1. split the stream into K chunks (default K = number of classes, as NOTE);
 *   2. for each class c: shuffle its images, draw proportions q ~ Dir(delta, ..., delta) over
 *      the K chunks, zero the proportions of chunks that already hold >= N/K images ("cap"),
 *      renormalise, and cut the class's images at floor(cumsum(q) * n_c) into K pieces;
 *   3. if some chunk ends up with fewer than `minSize` images (NOTE: 10), redraw everything;
 *   4. play the chunks in order 0..K-1; inside a chunk the class pieces come one after another
 *      in a random class order ("grouped", exactly what the NOTE and RoTTA code do), or with
 *      all of the chunk's images shuffled ("shuffled").
 *
 * Small delta concentrates each class in one chunk: long single-class runs. Note that with
 * "grouped" a large delta does NOT give an i.i.d. stream: each class is cut into K pieces of
 * about n_c/K consecutive images, so runs stay about n_c/K long. "shuffled" keeps the chunk's
 * label mix but shuffles inside it, so delta -> infinity tends to an i.i.d. stream, which is the
 * behaviour the papers describe. delta = 0 is the limit: the domain sorted by class (class 0's
 * images, then class 1's, ...).
 *
 * RoTTA's sampler is the same algorithm without the cap and the retry and with K = min(C, 100):
 * `{cap: false, minSize: 0, chunks: 100}` reproduces it.
 */
import { z } from 'zod';

import { CttaError } from '../../errors.js';
import {
  assemble,
  concat,
  domainSegments,
  indicesByClass,
  pickSubset,
  positiveInt,
  prepare,
  singleTaskBase,
  type DomainInput,
  type LabelSource,
  type Ordering,
} from './common.js';
import { SeededRng, normaliseLogWeights } from './rng.js';

export const dirichletParams = z
  .object({
    /** Dirichlet concentration; smaller = more label-correlated. NOTE uses 0.1, RoTTA 0.05 (its gamma). */
    delta: z.number().min(0).default(0.1),
    /** Number of chunks K (default: the number of classes, as NOTE). */
    chunks: positiveInt.optional(),
    /** Redraw until every chunk holds at least this many images (NOTE: 10; 0 disables the retry). */
    minSize: z.number().int().min(0).default(10),
    /** Stop giving images to chunks that already hold N/K of them (NOTE's balancing; RoTTA: false). */
    cap: z.boolean().default(true),
    /** Order inside a chunk: class pieces one after another ("grouped", NOTE/RoTTA) or "shuffled". */
    within: z.enum(['grouped', 'shuffled']).default('grouped'),
    /** Give up (with an error) after this many redraws. */
    maxAttempts: positiveInt.default(1000),
    /**
     * Images per domain (default: the whole split). A seeded subset is chosen before chunking
     * (NOTE instead cuts the finished stream's tail, which drops whole chunks and their classes).
     */
    samplesPerDomain: positiveInt.optional(),
  })
  .strict();

export type DirichletParams = z.input<typeof dirichletParams>;
type Resolved = z.output<typeof dirichletParams> & { chunks: number };

/**
 * The NOTE chunking of one domain's images. `subset` lists the images (their order only seeds
 * nothing: each class is reshuffled); returns them in stream order.
 */
export function dirichletChunks(
  labels: Int32Array,
  numClasses: number,
  subset: Int32Array,
  p: Resolved,
  rng: SeededRng,
): Int32Array {
  const n = subset.length;
  const byClass = indicesByClass(labels, numClasses, subset);
  if (p.delta === 0) return concat(byClass);
  const k = p.chunks;
  const capacity = n / k;
  for (let attempt = 1; attempt <= p.maxAttempts; attempt++) {
    // pieces[j][c] = images of class c in chunk j
    const pieces: Int32Array[][] = Array.from({ length: k }, () => []);
    const sizes = new Float64Array(k);
    for (let c = 0; c < numClasses; c++) {
      const members = rng.shuffle(byClass[c]!.slice());
      const logq = rng.dirichletLog(p.delta, k);
      if (members.length === 0) continue;
      if (p.cap) {
        for (let j = 0; j < k; j++) if (sizes[j]! >= capacity) logq[j] = -Infinity;
      }
      let q = normaliseLogWeights(logq);
      if (q.every((x) => x === 0)) {
        // Unreachable with the cap (not every chunk can be full while images remain), kept as a guard.
        q = new Float64Array(k).fill(1 / k);
      }
      // The last chunk with a non-zero share takes the rounding remainder, so a capped chunk
      // never receives images through float error in the cumulative sum.
      let last = k - 1;
      while (q[last] === 0) last--;
      let start = 0;
      let cum = 0;
      for (let j = 0; j <= last; j++) {
        cum += q[j]!;
        const end = j === last ? members.length : Math.min(members.length, Math.floor(cum * members.length));
        if (end > start) {
          pieces[j]!.push(members.subarray(start, end));
          sizes[j]! += end - start;
          start = end;
        }
      }
    }
    let smallest = Infinity;
    for (const s of sizes) smallest = Math.min(smallest, s);
    if (smallest < p.minSize) continue;

    const out = new Int32Array(n);
    let o = 0;
    for (let j = 0; j < k; j++) {
      const chunkStart = o;
      const chunk = pieces[j]!;
      for (const idx of rng.permutation(chunk.length)) {
        out.set(chunk[idx]!, o);
        o += chunk[idx]!.length;
      }
      if (p.within === 'shuffled') rng.shuffle(out.subarray(chunkStart, o));
    }
    return out;
  }
  throw new CttaError(
    `ordering "dirichlet": no draw in ${p.maxAttempts} attempts gave every one of the ${k} chunks ` +
      `params.minSize = ${p.minSize} images (delta = ${p.delta}, ${n} images per domain)`,
    { fix: 'lower params.minSize or params.chunks, or raise params.delta' },
  );
}

export function dirichlet(
  source: LabelSource,
  domainInputs: readonly DomainInput[] | undefined,
  params: DirichletParams | undefined,
  seed: number,
): Ordering {
  const kind = 'dirichlet';
  const { labels, numClasses, domains, p: parsed, rng } = prepare(kind, dirichletParams, source, domainInputs, params, seed);
  const { count, subset } = pickSubset(kind, parsed.samplesPerDomain, labels.length, rng);
  const p: Resolved = { ...parsed, chunks: parsed.chunks ?? numClasses };
  if (p.delta > 0 && p.chunks * p.minSize > count) {
    throw new CttaError(
      `ordering "dirichlet": params.minSize = ${p.minSize} per chunk x ${p.chunks} chunks needs ` +
        `${p.chunks * p.minSize} images, but a domain has ${count}`,
      { fix: 'lower params.minSize or params.chunks' },
    );
  }
  const segments = domainSegments(domains, (d) => dirichletChunks(labels, numClasses, subset, p, rng.fork('domain', d)));
  return assemble(singleTaskBase(kind, seed, { ...p, samplesPerDomain: count }, numClasses, domains), segments);
}
