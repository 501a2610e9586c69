import { fileURLToPath } from 'node:url';

/**
 * The package root (where models/, data/ and scenarios/ live). This file is src/util/paths.ts
 * or dist/util/paths.js: both two levels below the root.
 */
export function repoRoot(): string {
  return fileURLToPath(new URL('../../', import.meta.url)).replace(/[\\/]$/, '');
}
