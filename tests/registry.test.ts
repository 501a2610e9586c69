import { describe, expect, it } from 'vitest';
import { CttaError } from '../src/errors.js';
import { Registry } from '../src/util/registry.js';
import { expectCttaError } from './helpers.js';

interface Thing {
  name: string;
  value: number;
}

// A fresh global key per registry, so the tests do not see each other's entries.
let keys = 0;
const fresh = (options = {}) => new Registry<Thing>('thing', `ctta.test.registry.${keys++}`, options);

describe('Registry', () => {
  it('gets, lists in registration order and replaces in place', () => {
    const r = fresh();
    r.register({ name: 'b', value: 1 });
    r.register({ name: 'a', value: 2 });
    r.register({ name: 'c-3_x', value: 3 });
    expect(r.names()).toEqual(['b', 'a', 'c-3_x']);
    expect(r.get('a').value).toBe(2);
    expect([r.has('a'), r.has('z')]).toEqual([true, false]);
    r.register({ name: 'b', value: 10 });
    expect(r.list().map((t) => [t.name, t.value])).toEqual([['b', 10], ['a', 2], ['c-3_x', 3]]);
  });

  it('names the kind and the unknown name, and lists the known names in the fix', async () => {
    const r = fresh({ hint: '(or add yours)' });
    r.register({ name: 'alpha', value: 1 });
    r.register({ name: 'beta', value: 2 });
    const err = (() => {
      try {
        r.get('gamma');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CttaError);
    expect((err as CttaError).message).toBe('unknown thing "gamma"');
    expect((err as CttaError).fix).toBe('use one of: alpha, beta (or add yours)');
  });

  it('rejects invalid and reserved names, and entries without a name', async () => {
    const r = fresh({ reserved: ['none'] });
    for (const name of ['Upper', '1st', 'a b', '', 'x/y']) {
      await expectCttaError(() => r.register({ name, value: 0 }), /thing name ".*" is not valid.*lower-case/);
    }
    await expectCttaError(() => r.register({ name: 'none', value: 0 }), /thing name "none" is reserved/);
    await expectCttaError(() => r.register({ value: 0 } as unknown as Thing), /thing name undefined is not valid/);
    const custom = fresh({ pattern: /^[A-Z]+$/ });
    custom.register({ name: 'ABC', value: 0 });
    await expectCttaError(() => custom.register({ name: 'abc', value: 0 }), /must match/);
    expect(r.names()).toEqual([]);
  });

  it('is one table per process: two registries with the same key share their entries', () => {
    // What happens when ctta's modules are loaded twice (a plug-in importing the built package).
    const key = `ctta.test.registry.shared.${keys++}`;
    const first = new Registry<Thing>('thing', key);
    const second = new Registry<Thing>('thing', key);
    first.register({ name: 'one', value: 1 });
    expect(second.get('one').value).toBe(1);
    expect(fresh().has('one')).toBe(false);
  });
});
