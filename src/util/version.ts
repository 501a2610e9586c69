import { createRequire } from 'node:module';

/** This package's version, read from package.json (src/util and dist/util are both 2 levels down). */
export function packageVersion(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}
