/** Option parsers for commander that fail with a message naming the option and the fix. */
import { InvalidArgumentError } from 'commander';

export function intOption(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${value}"`);
    return n;
  };
}

export function floatOption(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number >= ${min}, got "${value}"`);
    return n;
  };
}

export function choiceOption<T extends string>(name: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`${name} must be one of ${choices.join(', ')}, got "${value}"`);
    }
    return value as T;
  };
}

/** A repeatable option's parser: each occurrence appends its value (`--set a --set b`). */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** "0-4" -> [0,1,2,3,4]; "0,2,5" -> [0,2,5]; "0-2,7" -> [0,1,2,7]. */
export function parseClassList(value: string): number[] {
  const out: number[] = [];
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) throw new InvalidArgumentError(`--classes: "${part}" is not a class id or range like 0-4`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new InvalidArgumentError(`--classes: range "${part}" runs backwards`);
    for (let c = a; c <= b; c++) if (!out.includes(c)) out.push(c);
  }
  return out;
}
