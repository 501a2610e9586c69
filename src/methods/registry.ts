/**
 * Method registry (timm-style `createMethod(name, options)`) and the plug-in loader: a user's
 * module registers more methods with `registerMethod` and is loaded with `--plugin file.js`.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CttaError } from '../errors.js';
import type { AdaptationMethod, MethodDefinition } from './types.js';

// One registry per process, even if ctta's modules are loaded twice (a plug-in importing the
// built package while the CLI runs from source, or two copies in node_modules).
const REGISTRY_KEY = Symbol.for('ctta.methods.registry');
const globalRegistry = globalThis as unknown as Record<symbol, Map<string, MethodDefinition> | undefined>;
const methods: Map<string, MethodDefinition> = (globalRegistry[REGISTRY_KEY] ??= new Map());

export function registerMethod<O extends Record<string, unknown>>(definition: MethodDefinition<O>): void {
  if (!/^[a-z][a-z0-9_-]*$/.test(definition.name)) {
    throw new CttaError(`method name "${definition.name}" is not valid`, { fix: 'use lower-case letters, digits, - and _' });
  }
  methods.set(definition.name, definition as unknown as MethodDefinition);
}

export function listMethods(): MethodDefinition[] {
  return [...methods.values()];
}

export function getMethodDefinition(name: string): MethodDefinition {
  const def = methods.get(name);
  if (!def) {
    throw new CttaError(`unknown method "${name}"`, { fix: `use one of: ${[...methods.keys()].join(', ')} (or load yours with --plugin)` });
  }
  return def;
}

/** Validates `options` and creates the method. Errors name the method and the option. */
export function createMethod(name: string, options: Record<string, unknown> = {}): AdaptationMethod {
  const def = getMethodDefinition(name);
  let parsed: Record<string, unknown>;
  try {
    parsed = def.options.parse(options);
  } catch (err) {
    const issues = (err as { issues?: { path: PropertyKey[]; message: string; code?: string; keys?: string[] }[] }).issues;
    const first = issues?.[0];
    const detail = first
      ? first.code === 'unrecognized_keys'
        ? `unknown option ${first.keys?.join(', ')}`
        : `option ${first.path.join('.')}: ${first.message}`
      : (err as Error).message;
    const known = def.options.shape ? Object.keys(def.options.shape).join(', ') : '';
    throw new CttaError(`method "${name}": ${detail}`, { fix: known ? `options of ${name}: ${known}` : `see ctta list methods` });
  }
  return def.create(parsed);
}

/** Imports a user's module; it registers methods as a side effect (via `registerMethod`). */
export async function loadPlugin(file: string): Promise<string[]> {
  const before = new Set(methods.keys());
  try {
    await import(pathToFileURL(resolve(file)).href);
  } catch (err) {
    throw new CttaError(`plug-in ${file} could not be loaded: ${(err as Error).message.split('\n')[0]}`, {
      fix: 'check the path; the module must be JavaScript (ESM) that imports { registerMethod } from "ctta"',
    });
  }
  const added = [...methods.keys()].filter((k) => !before.has(k));
  if (added.length === 0) {
    throw new CttaError(`plug-in ${file} registered no method`, { fix: 'call registerMethod({...}) in the module' });
  }
  return added;
}
