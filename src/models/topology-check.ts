/**
 * A check that tfjs can wire the layers a model.json describes, run before tfjs tries. tfjs-layers
 * (Container.fromConfig) re-queues a layer call until the node it takes input from exists, and
 * loops forever, synchronously, when that never happens; no timeout can stop it in-process. So a
 * corrupted or hostile model.json (an input from a missing layer or node, a cycle, a duplicated
 * layer name) must be caught here, on names and node counts alone.
 */
import { quote } from '../util/json-file.js';

/** tfjs-layers' toCamelCase: model.json keys (and class names) are converted with it before use. */
function toCamelCase(s: string): string {
  return s.length <= 1 || !s.includes('_') ? s : s.replace(/[_]+(\w|$)/g, (_m, c: string) => c.toUpperCase());
}

/** `obj[key]` as tfjs reads it after converting the keys to camelCase (the last matching key wins). */
function tsField(obj: Record<string, unknown>, key: string): unknown {
  let value: unknown;
  for (const k of Object.keys(obj)) if (toCamelCase(k) === key) value = obj[k];
  return value;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Checks that tfjs can wire the layers of every functional model in the topology: replays
 * tfjs's queue on names and node counts and returns the problem, or undefined. Layers must have a
 * name equal to their config's name and well-formed inbound nodes ([[layer, node, tensor, kwargs?],
 * ...]), as tfjs and Keras write them.
 */
export function functionalGraphProblem(topology: unknown): string | undefined {
  const stack: unknown[] = [topology];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
      continue;
    }
    if (!isObject(v)) continue;
    for (const k of Object.keys(v)) stack.push(v[k]);
    const cls = tsField(v, 'className');
    const config = tsField(v, 'config');
    if ((cls === 'Model' || cls === 'Functional') && isObject(config) && Array.isArray(tsField(config, 'layers'))) {
      const problem = wiringProblem(tsField(config, 'layers') as unknown[]);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** The problem with one functional model's layer list, or undefined when tfjs can wire it. */
function wiringProblem(layers: unknown[]): string | undefined {
  const nodes = new Map<string, number>(); // layer name -> inbound nodes it has so far
  const pending = new Map<string, unknown[][][]>();
  const order: string[] = [];
  for (const [i, layer] of layers.entries()) {
    if (!isObject(layer)) return `layer ${i} is not an object`;
    const name = tsField(layer, 'name');
    const config = tsField(layer, 'config');
    if (typeof name !== 'string' || name === '' || !isObject(config) || tsField(config, 'name') !== name) {
      return `layer ${i} has no name, or its config names it differently`;
    }
    // tfjs keeps layers in plain objects keyed by name: `__proto__`, `constructor`... misbehave there.
    if (name in Object.prototype) return `layer name ${quote(name)} is reserved`;
    if (nodes.has(name)) return `two layers are named ${quote(name)}`;
    const cls = tsField(layer, 'className');
    nodes.set(name, typeof cls === 'string' && toCamelCase(cls) === 'InputLayer' ? 1 : 0);
    const inbound = tsField(layer, 'inboundNodes');
    const wellFormed =
      Array.isArray(inbound) &&
      inbound.every((node) => Array.isArray(node) && node.every((input) => Array.isArray(input) && typeof input[0] === 'string' && Number.isInteger(input[1]) && (input[1] as number) >= 0));
    if (!wellFormed) return `the inbound nodes of layer ${quote(name)} are malformed`;
    pending.set(name, [...(inbound as unknown[][][])]);
    order.push(name);
  }
  while (pending.size > 0) {
    let progressed = false;
    let stuck = '';
    for (const name of order) {
      const queue = pending.get(name);
      if (!queue) continue;
      pending.delete(name);
      for (const node of queue) {
        const ready = node.every((input) => (nodes.get(input[0] as string) ?? 0) > (input[1] as number));
        if (!ready) {
          pending.set(name, [...(pending.get(name) ?? []), node]);
          stuck ||= name;
          continue;
        }
        progressed = true;
        if (node.length > 0) nodes.set(name, nodes.get(name)! + 1); // calling the layer adds a node
      }
    }
    if (!progressed) return `layer ${quote(stuck)} takes input from a layer or node that never exists (or from itself)`;
  }
  return undefined;
}
