/**
 * Method registry (timm-style `createMethod(name, options)`); a user's module registers more
 * methods with `registerMethod` and is loaded with `--plugin file.js` (plugin.ts).
 */
import { CttaError } from '../errors.js';
import { Registry } from '../util/registry.js';
import type { DatasetDefaultsKey } from '../streams/datasets/types.js';
import type { AdaptationMethod, MethodDefinition } from './types.js';

const methods = new Registry<MethodDefinition>('method', 'ctta.methods.registry', { hint: '(or load yours with --plugin)' });

export function registerMethod<O extends Record<string, unknown>>(definition: MethodDefinition<O>): void {
  methods.register(definition as unknown as MethodDefinition);
}

export function listMethods(): MethodDefinition[] {
  return methods.list();
}

export function getMethodDefinition(name: string): MethodDefinition {
  return methods.get(name);
}

/** The row of `def.defaults` for `dataset`: its own, else CIFAR-10's (the small-image default). */
export function datasetDefaults(def: MethodDefinition, dataset: DatasetDefaultsKey): Record<string, unknown> {
  return { ...(def.defaults?.[dataset] ?? def.defaults?.cifar10 ?? {}) };
}

/**
 * The options a run uses: what the user set, else the method's value for the dataset, else the
 * option's own default. Errors name the method and the option.
 */
export function resolveMethodOptions(name: string, options: Record<string, unknown> = {}, dataset: DatasetDefaultsKey = 'cifar10'): Record<string, unknown> {
  const def = getMethodDefinition(name);
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  try {
    return def.options.parse({ ...datasetDefaults(def, dataset), ...given });
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
}

/** What the runner calls on every method: a plug-in written as a plain object must have all of it. */
const REQUIRED = ['init', 'predict', 'adapt', 'evaluate', 'stateBytes', 'reset', 'dispose'] as const;

/** Creates method `name` with its options resolved for `dataset` (see resolveMethodOptions). */
export function createMethod(name: string, options: Record<string, unknown> = {}, dataset: DatasetDefaultsKey = 'cifar10'): AdaptationMethod {
  const method = getMethodDefinition(name).create(resolveMethodOptions(name, options, dataset));
  const lacks = REQUIRED.filter((k) => typeof (method as unknown as Record<string, unknown>)[k] !== 'function').map((k) => `${k}()`);
  if (method.labelSpace !== 'head' && method.labelSpace !== 'dataset') lacks.push("labelSpace ('head' or 'dataset')");
  if (lacks.length > 0) {
    throw new CttaError(`method "${name}" lacks ${lacks.join(', ')}`, {
      fix: "extend FrozenMethod or GradientMethod (exported by ctta), which provide them, or add them (see README, 'Writing a method')",
    });
  }
  return method;
}

/** How many registrations there have been (a plug-in that registers nothing is a mistake). */
export function methodRegistrations(): number {
  return methods.registrationCount;
}

/** Marks the methods registered so far as built in (methods/index.ts, after importing them). */
export function sealBuiltInMethods(): void {
  methods.seal();
}

