/**
 * Rows [0, M) of a two-view batch are the first views, rows [M, 2M) the second views of the same
 * M items (OPE's prototypes, the instance loss's samples): each row's positive is its twin.
 */

/** [2M, 2M] row-major: 1 where row and column are the two views of one item, else 0. */
export function otherViewMask(m: number): Float32Array {
  const mask = new Float32Array(4 * m * m);
  for (let i = 0; i < m; i++) {
    mask[i * 2 * m + (i + m)] = 1;
    mask[(i + m) * 2 * m + i] = 1;
  }
  return mask;
}
