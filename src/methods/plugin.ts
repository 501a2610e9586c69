/**
 * Plug-ins: a user's module that registers methods, loaded with `--plugin FILE`.
 *
 * A plug-in may live anywhere, also outside any project that has ctta installed, because it need
 * not import anything: its default export is a function that receives the library, with the tfjs
 * and zod instances ctta itself uses (a second copy of tfjs would not share ctta's backend):
 *
 *   export default ({ tf, z, GradientMethod, registerMethod }) => { registerMethod({...}) };
 *
 * A module that imports from 'ctta' and registers at load time works too, where 'ctta' resolves
 * from its folder. `.ts`/`.mts` plug-ins are compiled on load (tsx's esbuild, types erased).
 * A relative path is looked up in the working directory, then in the ctta package (its shipped
 * `examples/`).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { CttaError } from '../errors.js';
import { repoRoot } from '../util/paths.js';
import { listMethods, methodRegistrations } from './registry.js';

/** The names each plug-in file registered, so loading it again (ESM caches modules) reports them again. */
const pluginNames = new Map<string, string[]>();

const TYPESCRIPT = /\.(ts|mts|cts)$/;
const HOW = 'a plug-in is an ES module: export default ({ tf, z, registerMethod, GradientMethod, ... }) => { registerMethod({...}) } (README, "Writing a method")';

function locate(file: string): string {
  const candidates = isAbsolute(file) ? [file] : [resolve(file), join(repoRoot(), file)];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new CttaError(`plug-in ${file} could not be loaded: no such file (looked in ${candidates.join(' and ')})`, { fix: 'check the path' });
  }
  return found;
}

/** What a plug-in's default export receives: the library, plus the tfjs and zod ctta uses. */
async function pluginApi(): Promise<Record<string, unknown>> {
  // Imported here, not at the top: the library's index imports this module.
  const library = await import('../index.js');
  return { ...library, tf, z };
}

async function importModule(path: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(path).href;
  if (!TYPESCRIPT.test(path)) return (await import(url)) as Record<string, unknown>;
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
}

/**
 * The default export, if it is a function. A `.ts` file outside any `"type": "module"` package is
 * compiled as CommonJS, whose exports arrive as the namespace's `default`: look one level down.
 */
function defaultExport(module: Record<string, unknown>): ((api: unknown) => unknown) | undefined {
  const first = module.default;
  if (typeof first === 'function') return first as (api: unknown) => unknown;
  const nested = (first as Record<string, unknown> | undefined)?.default;
  return typeof nested === 'function' ? (nested as (api: unknown) => unknown) : undefined;
}

/** Imports a plug-in and runs its default export; returns the names it registered. */
export async function loadPlugin(file: string): Promise<string[]> {
  const path = locate(file);
  const known = pluginNames.get(path);
  if (known) return known;
  const count = methodRegistrations();
  const before = new Map(listMethods().map((d) => [d.name, d] as const));
  try {
    const setup = defaultExport(await importModule(path));
    if (setup) await setup(await pluginApi());
  } catch (err) {
    if (err instanceof CttaError) throw new CttaError(`plug-in ${file}: ${err.message}`, { fix: err.fix });
    const message = (err as Error).message.split('\n')[0]!;
    const unresolved = /Cannot find (package|module) '([^']+)'/.exec(message);
    throw new CttaError(`plug-in ${file} could not be loaded: ${message}`, {
      fix: unresolved ? `${unresolved[2]} is not installed beside the plug-in: take it from the argument of a default export instead; ${HOW}` : HOW,
    });
  }
  // New names, and names it registered again (its own, from an earlier load of another path).
  const registered = listMethods().filter((d) => before.get(d.name) !== d).map((d) => d.name);
  if (methodRegistrations() === count) {
    throw new CttaError(`plug-in ${file} registered no method`, { fix: `call registerMethod({...}); ${HOW}` });
  }
  pluginNames.set(path, registered);
  return registered;
}
