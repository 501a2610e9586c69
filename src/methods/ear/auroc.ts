/**
 * AUROC of an out-of-distribution score: the probability that a randomly drawn out-of-
 * distribution sample scores higher than a randomly drawn in-distribution one, ties counting one
 * half (the Mann-Whitney U statistic divided by n_in x n_out; equal to the area under the ROC
 * curve traced by thresholding the score, OOD = positive). 1 = perfect separation, 0.5 = chance.
 */
import { CttaError } from '../../errors.js';

/**
 * AUROC with the out-of-distribution samples as positives: `scoresIn` are the scores of
 * in-distribution samples, `scoresOut` those of shifted ones, both "higher = more OOD" (EAR's
 * detector: minus the best cosine similarity to a source class descriptor). O(n log n): midranks
 * of the pooled scores, so ties are counted exactly.
 */
export function auroc(scoresIn: ArrayLike<number>, scoresOut: ArrayLike<number>): number {
  const nIn = scoresIn.length;
  const nOut = scoresOut.length;
  if (nIn === 0 || nOut === 0) {
    throw new CttaError(`auroc needs scores on both sides (got ${nIn} in-distribution and ${nOut} out-of-distribution)`, {
      fix: 'pass at least one score of each kind',
    });
  }
  const pooled: { v: number; out: boolean }[] = [];
  for (let i = 0; i < nIn; i++) pooled.push({ v: check(scoresIn[i]!), out: false });
  for (let i = 0; i < nOut; i++) pooled.push({ v: check(scoresOut[i]!), out: true });
  pooled.sort((a, b) => a.v - b.v);
  // Sum of the 1-based ranks of the OOD scores, a tied run sharing its mean rank.
  let rankSum = 0;
  for (let i = 0; i < pooled.length; ) {
    let j = i;
    while (j + 1 < pooled.length && pooled[j + 1]!.v === pooled[i]!.v) j++;
    const midrank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (pooled[k]!.out) rankSum += midrank;
    i = j + 1;
  }
  const u = rankSum - (nOut * (nOut + 1)) / 2;
  return u / (nIn * nOut);
}

function check(v: number): number {
  if (!Number.isFinite(v)) throw new CttaError(`auroc: score ${v} is not a finite number`, { fix: 'pass finite scores' });
  return v;
}
