/**
 * Integrity and safety of checkpoint loading: a checkpoint folder is untrusted input. Paths it
 * names stay inside it, malformed or hostile files give one line (never a stack trace, a tfjs
 * internal message or bytes of a file), and the manifest's sha256s cover model.json as well as
 * the weights. Each test copies a shipped checkpoint to a temporary folder and corrupts it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCompanion } from '../src/eval/companions.js';
import { CttaError } from '../src/errors.js';
import { loadModel, modelHash } from '../src/models/checkpoint.js';
import { MODEL, ROOT, useWasm } from './helpers.js';

beforeAll(useWasm);

const VIDA = `${ROOT}models/fmnist-resnet8-vida`;
const BASE5 = `${ROOT}models/fmnist-resnet8-base5`;
/** The outside file's content and size: neither may reach any message. */
const SECRET = 'SECRET-OUTSIDE-CONTENT-7f3a';
const OUTSIDE_SIZE = 123457;

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** A copy of a shipped checkpoint in `<tmp>/model`, and a real file `<tmp>/outside.bin` beside it. */
function copy(from = MODEL): { dir: string; outside: string; base: string } {
  const base = mkdtempSync(join(tmpdir(), 'ctta-safety-'));
  temps.push(base);
  const dir = join(base, 'model');
  cpSync(from, dir, { recursive: true });
  const outside = join(base, 'outside.bin');
  writeFileSync(outside, Buffer.alloc(OUTSIDE_SIZE, `${SECRET} `));
  return { dir, outside, base };
}

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, any>;

/** Writes the manifest back in the shipped format (2-space JSON + newline). */
function writeManifest(dir: string, m: Record<string, unknown>): void {
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
}

/** Edits model.json and, like a hostile author would, makes the manifest's sha256 match it. */
function editModelJson(dir: string, edit: (json: Record<string, any>) => void): void {
  const json = readJson(join(dir, 'model.json'));
  edit(json);
  writeModelJsonText(dir, JSON.stringify(json));
}

function writeModelJsonText(dir: string, text: string): void {
  writeFileSync(join(dir, 'model.json'), text);
  const m = readJson(join(dir, 'manifest.json'));
  m['modelJsonSha256'] = sha256(readFileSync(join(dir, 'model.json')));
  writeManifest(dir, m);
}

/** The CttaError `fn` throws, as its printed line. */
async function failure(fn: () => Promise<unknown>): Promise<string> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof CttaError)) throw new Error(`expected a CttaError, got ${caught === undefined ? 'success' : String((caught as Error).stack ?? caught)}`);
  const line = caught.toLine();
  expect(line).not.toContain('\n');
  expect(caught.fix).toBeTruthy();
  return line;
}

/** The line names the folder, and nothing about the outside file reaches it. */
function expectNoLeak(line: string, dir: string): void {
  expect(line).toContain(dir);
  expect(line).not.toContain(SECRET);
  expect(line).not.toContain(String(OUTSIDE_SIZE));
  expect(line).not.toContain('123,457');
}

describe('checkpoint paths stay inside the model folder', () => {
  it('refuses a weights path that escapes with ..', async () => {
    const { dir } = copy();
    editModelJson(dir, (j) => (j.weightsManifest[0].paths = ['../outside.bin']));
    const line = await failure(() => loadModel(dir));
    expect(line).toContain(`${join(dir, 'model.json')}: weights path "../outside.bin" leaves the model folder`);
    expect(line).toMatch(/fix: re-export the model/);
    expectNoLeak(line, dir);
    // The same through a sub-path, and with Windows separators (refused on every platform).
    for (const p of ['sub/../../outside.bin', '..\\outside.bin']) {
      editModelJson(dir, (j) => (j.weightsManifest[0].paths = [p]));
      const other = await failure(() => loadModel(dir));
      expect(other).toContain(`weights path ${JSON.stringify(p)} leaves the model folder`);
      expectNoLeak(other, dir);
    }
  });

  it('refuses an absolute weights path', async () => {
    const { dir, outside } = copy();
    editModelJson(dir, (j) => (j.weightsManifest[0].paths = [outside]));
    const line = await failure(() => loadModel(dir));
    expect(line).toMatch(/model\.json: weights path ".*outside\.bin" leaves the model folder/);
    expectNoLeak(line, dir);
  });

  it('refuses a symlink that resolves outside, whether or not its target exists', async () => {
    const a = copy();
    unlinkSync(join(a.dir, 'weights.bin'));
    symlinkSync(a.outside, join(a.dir, 'weights.bin'));
    const existing = await failure(() => loadModel(a.dir));
    expect(existing).toContain(`${join(a.dir, 'model.json')}: weights path "weights.bin" leaves the model folder`);
    expectNoLeak(existing, a.dir);

    const b = copy();
    unlinkSync(join(b.dir, 'weights.bin'));
    symlinkSync(join(b.base, 'no-such-file.bin'), join(b.dir, 'weights.bin'));
    const dangling = await failure(() => loadModel(b.dir));
    // The same line: whether the outside target exists is not observable.
    expect(dangling.replaceAll(b.dir, 'DIR')).toBe(existing.replaceAll(a.dir, 'DIR'));
  });

  it('refuses a path through a symlinked folder that leads outside', async () => {
    const { dir, base } = copy();
    symlinkSync(base, join(dir, 'up'));
    editModelJson(dir, (j) => (j.weightsManifest[0].paths = ['up/outside.bin']));
    const line = await failure(() => loadModel(dir));
    expect(line).toMatch(/weights path "up\/outside\.bin" leaves the model folder/);
    expectNoLeak(line, dir);
  });

  it('refuses an adapters file that escapes the folder', async () => {
    const { dir } = copy(VIDA);
    const m = readJson(join(dir, 'manifest.json'));
    m['adapters'].file = '../outside.bin';
    writeManifest(dir, m);
    const line = await failure(() => loadModel(dir));
    expect(line).toContain(`${join(dir, 'manifest.json')}: adapters file "../outside.bin" leaves the model folder`);
    expectNoLeak(line, dir);
  });

  it('a companion checkpoint is held to its own folder', async () => {
    const { dir } = copy(VIDA);
    const m = readJson(join(dir, 'manifest.json'));
    m['adapters'].file = '../outside.bin';
    writeManifest(dir, m);
    const { network } = await loadModel(MODEL);
    try {
      const line = await failure(() => loadCompanion(network, MODEL, 'vida', dir));
      expect(line).toMatch(/adapters file "\.\.\/outside\.bin" leaves the model folder/);
      expectNoLeak(line, dir);
    } finally {
      network.dispose();
    }
  });
});

describe('malformed or hostile model.json and manifest.json give one line', () => {
  const cases: [string, (j: Record<string, any>) => void, RegExp][] = [
    ['null paths', (j) => (j.weightsManifest[0].paths = null), /model\.json: weightsManifest\[0\]\.paths: .*array/],
    ['a non-string path', (j) => (j.weightsManifest[0].paths = [42]), /model\.json: weightsManifest\[0\]\.paths\[0\]: .*string/],
    ['weights that are not an array', (j) => (j.weightsManifest[0].weights = { a: 1 }), /model\.json: weightsManifest\[0\]\.weights: .*array/],
    ['a negative shape', (j) => (j.weightsManifest[0].weights[0].shape = [-3, 3]), /model\.json: weightsManifest\[0\]\.weights\[0\]\.shape\[0\]/],
    ['an unknown dtype', (j) => (j.weightsManifest[0].weights[1].dtype = 'float64'), /model\.json: weightsManifest\[0\]\.weights\[1\]\.dtype/],
    [
      'an unknown layer class',
      (j) => (j.modelTopology.config.layers[1].class_name = 'FooLayer'),
      /model\.json: layer class "FooLayer" is not known to tfjs\/ctta.*fix:/,
    ],
    [
      'a topology tf cannot build',
      (j) => (j.modelTopology.config.output_layers = [['no_such_layer', 0, 0]]),
      /model\.json: tfjs cannot build the model it describes.*fix:/,
    ],
  ];
  for (const [what, edit, pattern] of cases) {
    it(`refuses ${what}`, async () => {
      const { dir } = copy();
      editModelJson(dir, edit);
      const line = await failure(() => loadModel(dir));
      expect(line).toMatch(pattern);
      expect(line).toContain(dir);
      expect(line).not.toMatch(/This may be due|at .*\.js:\d+/);
    });
  }

  it('refuses layer wiring that would make tfjs loop forever (checked in a child process: a hang cannot be timed out in-process)', () => {
    const { dir, base } = copy();
    // stem_conv takes its input from a layer that does not exist: tfjs re-queues it forever.
    editModelJson(dir, (j) => (j.modelTopology.config.layers[1].inbound_nodes = [[['no_such_layer', 0, 0, {}]]]));
    const script = join(base, 'load.mts');
    writeFileSync(
      script,
      `import { loadModel } from ${JSON.stringify(join(ROOT, 'src/models/checkpoint.ts'))};\n` +
        `try { await loadModel(${JSON.stringify(dir)}); console.log('LOADED'); } catch (err) { console.log(err.name + ': ' + (err.toLine ? err.toLine() : err.message)); }\n`,
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, encoding: 'utf8', timeout: 240_000, killSignal: 'SIGKILL' });
    expect(r.signal, 'the loader hung (killed after 240 s)').toBeNull();
    expect(r.stdout).toMatch(/^CttaError: .*model\.json: tfjs cannot build the model it describes: layer "stem_conv" takes input from a layer or node that never exists/);
  });

  it('refuses manifest fields of the wrong kind', async () => {
    const edits: [(m: Record<string, any>) => void, RegExp][] = [
      [(m) => (m.classes = [0, 1.5]), /manifest\.json: classes\[1\]: .*int/],
      [(m) => (m.classes = 'all'), /manifest\.json: classes: .*array/],
      [(m) => (m.weightsSha256 = 7), /manifest\.json: weightsSha256: /],
      [(m) => (m.modelJsonSha256 = null), /manifest\.json: modelJsonSha256: /],
      [(m) => (m.adapters = { kind: 'vida', file: 42 }), /manifest\.json: adapters\.file: /],
    ];
    const { dir } = copy();
    const original = readJson(join(dir, 'manifest.json'));
    for (const [edit, pattern] of edits) {
      const m = structuredClone(original);
      edit(m);
      writeManifest(dir, m);
      const line = await failure(() => loadModel(dir));
      expect(line).toMatch(pattern);
      expect(line).toContain(dir);
    }
  });

  it('refuses an oversized model.json or manifest.json without reading it', async () => {
    const a = copy();
    truncateSync(join(a.dir, 'model.json'), 65 * 2 ** 20); // sparse
    expect(await failure(() => loadModel(a.dir))).toMatch(/model\.json is larger than 64 MiB/);
    const b = copy();
    truncateSync(join(b.dir, 'manifest.json'), 65 * 2 ** 20);
    expect(await failure(() => loadModel(b.dir))).toMatch(/manifest\.json is larger than 64 MiB/);
  });

  it('says where JSON is invalid without quoting the file', async () => {
    const { dir } = copy();
    writeModelJsonText(dir, '{\n  "modelTopology": {},\n  "weightsManifest": TOPSECRET-bytes\n}\n');
    const line = await failure(() => loadModel(dir));
    expect(line).toContain(`${join(dir, 'model.json')} is not valid JSON (line 3, column 22)`);
    expect(line).not.toContain('TOPSECRET');

    writeFileSync(join(dir, 'manifest.json'), '{"format": "ctta-model/1", TOPSECRET}');
    const m = await failure(() => loadModel(dir));
    expect(m).toContain(`${join(dir, 'manifest.json')} is not valid JSON (line 1, column 28)`);
    expect(m).not.toContain('TOPSECRET');
  });
});

describe('the manifest checks model.json as well as the weights', () => {
  it('refuses a model.json edited by one byte', async () => {
    const { dir } = copy();
    const file = join(dir, 'model.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"convertedBy":"ctta"', '"convertedBy":"cttb"'));
    const line = await failure(() => loadModel(dir));
    expect(line).toContain(`${join(dir, 'model.json')} does not match the modelJsonSha256 in manifest.json`);
  });

  it('refuses a manifest without modelJsonSha256 (written by an older ctta)', async () => {
    const { dir } = copy();
    const m = readJson(join(dir, 'manifest.json'));
    delete m['modelJsonSha256'];
    writeManifest(dir, m);
    const line = await failure(() => loadModel(dir));
    expect(line).toMatch(/manifest\.json has no modelJsonSha256: it was written by an older ctta.*fix: .*re-run the command/);
    expect(line).toContain(dir);
  });

  it('the shipped checkpoints carry the sha256 of their model.json', () => {
    for (const dir of [MODEL, BASE5, VIDA]) {
      const text = readFileSync(join(dir, 'manifest.json'), 'utf8');
      const m = JSON.parse(text);
      expect(m.modelJsonSha256).toBe(sha256(readFileSync(join(dir, 'model.json'))));
      // 2-space JSON, inserted right after weightsSha256, trailing newline.
      expect(text).toContain(`\n  "weightsSha256": "${m.weightsSha256}",\n  "modelJsonSha256": "${m.modelJsonSha256}"`);
      expect(text.endsWith('}\n')).toBe(true);
      const keys = Object.keys(m);
      expect(keys[keys.indexOf('weightsSha256') + 1]).toBe('modelJsonSha256');
    }
  });
});

describe('model identity', () => {
  it('hash covers model.json, weights and adapters', async () => {
    const base = await loadModel(MODEL);
    const vida = await loadModel(VIDA);
    try {
      const files = (dir: string, name: string) => sha256(readFileSync(join(dir, name)));
      expect(base.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(base.hash).toBe(modelHash({ modelJsonSha256: files(MODEL, 'model.json'), weightsSha256: files(MODEL, 'weights.bin') }));
      expect(vida.hash).toBe(
        modelHash({ modelJsonSha256: files(VIDA, 'model.json'), weightsSha256: files(VIDA, 'weights.bin'), adaptersSha256: files(VIDA, 'adapters.bin') }),
      );
      expect(base.hash).toBe(
        sha256(`ctta-model-hash/1\nmodel.json ${files(MODEL, 'model.json')}\nweights ${files(MODEL, 'weights.bin')}\nadapters none\n`),
      );
      expect(vida.hash).not.toBe(base.hash);
    } finally {
      base.network.dispose();
      vida.network.dispose();
    }
  });

  it('a plain tfjs model.json without manifest still loads, with the same hash', async () => {
    const { dir } = copy();
    unlinkSync(join(dir, 'manifest.json'));
    const plain = await loadModel(join(dir, 'model.json'));
    try {
      expect(plain.manifest).toBeUndefined();
      expect(plain.network.numClasses).toBe(10);
      expect(plain.hash).toBe(modelHash({ modelJsonSha256: sha256(readFileSync(join(dir, 'model.json'))), weightsSha256: sha256(readFileSync(join(dir, 'weights.bin'))) }));
    } finally {
      plain.network.dispose();
    }
    // Without a manifest, containment and the malformed-input checks still apply.
    const json = readJson(join(dir, 'model.json'));
    json['weightsManifest'][0].paths = ['../outside.bin'];
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    const line = await failure(() => loadModel(dir));
    expect(line).toMatch(/weights path "\.\.\/outside\.bin" leaves the model folder/);
    expectNoLeak(line, dir);
  });
});
