/**
 * Rounding to the nearest integer with ties to even, as numpy's `np.round` and torch's
 * `torch.round` do (the authors round crop sizes and pair counts with them). JavaScript's
 * `Math.round` sends every tie upwards, which would give e.g. 2.5 -> 3 where theirs gives 2.
 */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction < 0.5) return floor;
  if (fraction > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}
