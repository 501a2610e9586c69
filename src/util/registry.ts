/**
 * One shape for every "name -> definition" table ctta keeps (methods, models, datasets,
 * orderings, corruptions): register, look up with a helpful error, list in registration order.
 *
 * ```ts
 * const models = new Registry<ModelDefinition>('model', 'ctta.models.registry');
 * models.register({ name: 'resnet8', ... });
 * models.get('resnet9'); // CttaError: unknown model "resnet9" (fix: use one of: resnet8)
 * ```
 */
import { CttaError } from '../errors.js';

export interface RegistryOptions {
  /** Names an entry may have; default lower-case letters, digits, - and _, starting with a letter. */
  pattern?: RegExp;
  /** Names that cannot be registered because something else means them (e.g. "none", the clean domain). */
  reserved?: readonly string[];
  /** Appended to the unknown-name fix, e.g. "(or load yours with --plugin)". */
  hint?: string;
}

const DEFAULT_PATTERN = /^[a-z][a-z0-9_-]*$/;

/**
 * How many registrations the registry `key` (e.g. "ctta.corruptions.registry") has had in this
 * thread, built-ins included (0 before its module loads). Two threads whose counts differ do not
 * have the same entries: a worker thread loads the built-ins only, never the plug-ins.
 */
export function registrationCount(key: string): number {
  return ((globalThis as unknown as Record<symbol, number[] | undefined>)[Symbol.for(`${key}.count`)] ?? [0])[0]!;
}

export class Registry<T extends { name: string }> {
  /**
   * The entries live on globalThis under `Symbol.for(key)`, not in this object: if ctta's modules
   * are loaded twice (a plug-in importing the built package while the CLI runs from source, or two
   * copies in node_modules), both copies then read and write the same table. Only the Map is
   * shared, so two copies of this class (even of different versions) still agree.
   */
  private readonly entries: Map<string, T>;
  private readonly pattern: RegExp;
  private readonly reserved: ReadonlySet<string>;
  private readonly hint: string;

  /**
   * @param kind what an entry is, singular, for messages ("model", "dataset").
   * @param key global key of the shared table, e.g. "ctta.models.registry".
   */
  /** Built-in names, shared like the entries (see seal()). */
  private readonly sealed: Set<string>;
  /** Registrations so far, shared like the entries: [count]. */
  private readonly counter: number[];
  /** This copy has loaded its built-ins: from now on its registrations are plug-ins'. */
  private loaded = false;

  constructor(
    readonly kind: string,
    key: string,
    options: RegistryOptions = {},
  ) {
    const slots = globalThis as unknown as Record<symbol, Map<string, T> | undefined>;
    this.entries = slots[Symbol.for(key)] ??= new Map();
    const shared = globalThis as unknown as Record<symbol, unknown>;
    this.sealed = (shared[Symbol.for(`${key}.built-in`)] ??= new Set<string>()) as Set<string>;
    this.counter = (shared[Symbol.for(`${key}.count`)] ??= [0]) as number[];
    this.pattern = options.pattern ?? DEFAULT_PATTERN;
    this.reserved = new Set(options.reserved ?? []);
    this.hint = options.hint ? ` ${options.hint}` : '';
  }

  /** Adds `entry`, or replaces the entry of the same name (which keeps its place in `list()`). */
  register(entry: T): void {
    // Plug-ins are plain JavaScript: check the shape, not only the name.
    const name = (entry as { name?: unknown } | undefined)?.name;
    if (typeof name !== 'string' || !this.pattern.test(name)) {
      throw new CttaError(`${this.kind} name ${JSON.stringify(name)} is not valid`, {
        fix: this.pattern === DEFAULT_PATTERN ? 'use lower-case letters, digits, - and _, starting with a letter' : `names must match ${String(this.pattern)}`,
      });
    }
    if (this.reserved.has(name)) {
      throw new CttaError(`${this.kind} name "${name}" is reserved`, { fix: `choose another name (reserved: ${[...this.reserved].join(', ')})` });
    }
    if (this.loaded && this.sealed.has(name) && this.entries.get(name) !== entry) {
      throw new CttaError(`${this.kind} "${name}" is built into ctta and cannot be replaced`, { fix: `give yours another name (e.g. my-${name})` });
    }
    this.entries.set(name, entry);
    this.counter[0]! += 1;
  }

  /**
   * Marks every entry registered so far as built in (called once the built-ins are imported):
   * later registrations, i.e. plug-ins', may add names but not replace these, so "tent" in a
   * table is always ctta's TENT. A second copy of ctta loading its own built-ins is not refused:
   * each copy seals after its own.
   */
  seal(): void {
    for (const name of this.entries.keys()) this.sealed.add(name);
    this.loaded = true;
  }

  /** Registrations so far, by every copy (a plug-in's import is counted by the difference). */
  get registrationCount(): number {
    return this.counter[0]!;
  }

  /** The entry `name`; a CttaError listing the known names when there is none. */
  get(name: string): T {
    const entry = this.entries.get(name);
    if (!entry) {
      throw new CttaError(`unknown ${this.kind} "${name}"`, { fix: `use one of: ${this.names().join(', ')}${this.hint}` });
    }
    return entry;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Every entry, in registration order. */
  list(): T[] {
    return [...this.entries.values()];
  }

  /** Every name, in registration order. */
  names(): string[] {
    return [...this.entries.keys()];
  }
}
