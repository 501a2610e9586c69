/**
 * NumPy `.npy` files (format spec: numpy.lib.format, NEP 1).
 *
 * Layout: the magic `\x93NUMPY`, a major and minor version byte, the header length (uint16 LE in
 * v1.0; uint32 LE in v2.0 and v3.0), then the header: a Python dict literal such as
 * `{'descr': '|u1', 'fortran_order': False, 'shape': (50000, 32, 32, 3), }` padded with spaces to
 * a multiple of 64 bytes (latin-1 in v1/v2, UTF-8 in v3). The raw array follows, C order.
 *
 * Because the data start at a known offset, rows along the first axis can be read by byte range
 * (`readNpyRows`), so one severity of a 50000-image CIFAR-10-C file costs 10000 images of memory.
 */
import { open, writeFile } from 'node:fs/promises';

import { CttaError } from '../../../errors.js';

export type NpyDtype = 'bool' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'uint64' | 'int64' | 'float32' | 'float64';

export interface NpyHeader {
  /** "1.0", "2.0" or "3.0". */
  version: string;
  /** The dtype string as written, e.g. "|u1" or "<i8". */
  descr: string;
  dtype: NpyDtype;
  itemSize: number;
  littleEndian: boolean;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the first array element. */
  dataOffset: number;
}

/** What a reader expects; `null` in `shape` accepts any size on that axis. */
export interface NpyExpectation {
  dtypes?: readonly NpyDtype[];
  shape?: readonly (number | null)[];
  /** How to print the expected shape, e.g. "[50000, 32, 32, 3]". */
  shapeText?: string;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const KIND_SIZE: Record<string, NpyDtype> = {
  b1: 'bool',
  u1: 'uint8',
  i1: 'int8',
  u2: 'uint16',
  i2: 'int16',
  u4: 'uint32',
  i4: 'int32',
  u8: 'uint64',
  i8: 'int64',
  f4: 'float32',
  f8: 'float64',
};

const ITEM_SIZE: Record<NpyDtype, number> = {
  bool: 1,
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  uint64: 8,
  int64: 8,
  float32: 4,
  float64: 8,
};

// ---- a tiny parser for the header's Python literal --------------------------------------------

type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

class PyLiteralParser {
  private at = 0;
  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  // The header's text is never quoted: messages say what is wrong and where, not what is there.
  private fail(what: string): never {
    throw new CttaError(`${this.file}: malformed .npy header (${what} at character ${this.at})`, {
      fix: 'the file is damaged or not a NumPy .npy file; re-create it with numpy.save',
    });
  }

  private skipSpace(): void {
    while (this.at < this.text.length && /\s/.test(this.text[this.at]!)) this.at++;
  }

  parse(): PyValue {
    const value = this.value();
    this.skipSpace();
    if (this.at !== this.text.length) this.fail('trailing text');
    return value;
  }

  private value(): PyValue {
    this.skipSpace();
    const ch = this.text[this.at];
    if (ch === '{') return this.dict();
    if (ch === '(') return this.sequence(')');
    if (ch === '[') return this.sequence(']');
    if (ch === "'" || ch === '"') return this.string();
    const word = /^[A-Za-z_]+/.exec(this.text.slice(this.at));
    if (word) {
      this.at += word[0].length;
      if (word[0] === 'True') return true;
      if (word[0] === 'False') return false;
      if (word[0] === 'None') return null;
      this.fail('a name other than True, False or None');
    }
    const num = /^[-+]?\d+(\.\d*)?([eE][-+]?\d+)?L?/.exec(this.text.slice(this.at));
    if (num) {
      this.at += num[0].length;
      return Number(num[0].replace(/L$/, ''));
    }
    return this.fail('unexpected character');
  }

  private string(): string {
    const quote = this.text[this.at++];
    let out = '';
    while (this.at < this.text.length && this.text[this.at] !== quote) {
      if (this.text[this.at] === '\\') this.at++;
      out += this.text[this.at++];
    }
    if (this.at >= this.text.length) this.fail('unterminated string');
    this.at++;
    return out;
  }

  private sequence(close: string): PyValue[] {
    this.at++;
    const items: PyValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.text[this.at] === close) {
        this.at++;
        return items;
      }
      items.push(this.value());
      this.skipSpace();
      if (this.text[this.at] === ',') this.at++;
      else if (this.text[this.at] !== close) this.fail(`expected "," or "${close}"`);
    }
  }

  private dict(): { [key: string]: PyValue } {
    this.at++;
    const out: { [key: string]: PyValue } = {};
    for (;;) {
      this.skipSpace();
      if (this.text[this.at] === '}') {
        this.at++;
        return out;
      }
      const key = this.value();
      if (typeof key !== 'string') this.fail('dict key is not a string');
      this.skipSpace();
      if (this.text[this.at] !== ':') this.fail('expected ":"');
      this.at++;
      out[key] = this.value();
      this.skipSpace();
      if (this.text[this.at] === ',') this.at++;
      else if (this.text[this.at] !== '}') this.fail('expected "," or "}"');
    }
  }
}

// ---- header ------------------------------------------------------------------------------------

/** Bytes needed to be sure the whole header of any sane .npy file is read. */
const HEADER_PROBE = 64 * 1024;

/** Parse the header from the first bytes of a file (at least the whole header). */
export function parseNpyHeader(bytes: Uint8Array, file = '<buffer>'): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new CttaError(`${file}: not a NumPy .npy file (it does not start with "\\x93NUMPY")`, {
      fix: 'pass a file written by numpy.save',
    });
  }
  const major = bytes[6]!;
  const minor = bytes[7]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let start: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new CttaError(`${file}: truncated .npy header`);
    headerLength = view.getUint32(8, true);
    start = 12;
  } else {
    throw new CttaError(`${file}: unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  if (start + headerLength > bytes.length) {
    throw new CttaError(`${file}: truncated .npy header (needs ${start + headerLength} bytes, file has ${bytes.length})`);
  }
  const raw = bytes.subarray(start, start + headerLength);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(raw);
  const dict = new PyLiteralParser(text, file).parse();
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) {
    throw new CttaError(`${file}: .npy header is not a dict (expected {'descr': ..., 'fortran_order': ..., 'shape': ...})`, {
      fix: 'the file is damaged or not a NumPy .npy file; re-create it with numpy.save',
    });
  }
  const { descr, fortran_order: fortran, shape } = dict;
  if (typeof descr !== 'string') {
    throw new CttaError(`${file}: structured dtype (its 'descr' is a ${Array.isArray(descr) ? 'list of fields' : 'non-string value'}) is not supported; expected a plain array`, {
      fix: 'save a plain numeric array (e.g. uint8 images, int64 labels)',
    });
  }
  if (typeof fortran !== 'boolean') throw new CttaError(`${file}: .npy header lacks 'fortran_order'`);
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) {
    throw new CttaError(`${file}: .npy header has an invalid 'shape' (expected a tuple of non-negative integers)`, {
      fix: 'the file is damaged or not a NumPy .npy file; re-create it with numpy.save',
    });
  }
  const m = /^([<>|=])([a-z]\d+)$/.exec(descr);
  const dtype = m ? KIND_SIZE[m[2]!] : undefined;
  if (!m || !dtype) {
    // Only a string shaped like a NumPy type code (e.g. '<U10', '<c8') is repeated in the message.
    const shown = /^[<>|=]?[A-Za-z]\d{0,3}$/.test(descr) ? `'${descr}'` : '(not a NumPy type code)';
    throw new CttaError(`${file}: unsupported dtype ${shown}`, {
      fix: `save as one of: ${Object.keys(KIND_SIZE).join(', ')} (e.g. |u1 images, <i8 labels)`,
    });
  }
  const order = m[1]!;
  if (order === '>' && ITEM_SIZE[dtype] > 1) {
    throw new CttaError(`${file}: big-endian dtype '${descr}' is not supported`, {
      fix: "convert it in NumPy with arr.astype(arr.dtype.newbyteorder('<'))",
    });
  }
  return {
    version: `${major}.${minor}`,
    descr,
    dtype,
    itemSize: ITEM_SIZE[dtype],
    littleEndian: true,
    fortranOrder: fortran,
    shape: shape as number[],
    dataOffset: start + headerLength,
  };
}

export function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? '*' : String(d))).join(', ')}]`;
}

/** Throw a CttaError naming the file, what was found and what was expected. */
export function checkNpy(header: NpyHeader, file: string, expect: NpyExpectation): void {
  const dtypeOk = !expect.dtypes || expect.dtypes.includes(header.dtype);
  const shapeOk =
    !expect.shape ||
    (expect.shape.length === header.shape.length && expect.shape.every((d, i) => d === null || d === header.shape[i]));
  if (dtypeOk && shapeOk && !header.fortranOrder) return;
  const expectedDtype = expect.dtypes ? expect.dtypes.join(' or ') : 'any dtype';
  const expectedShape = expect.shapeText ?? (expect.shape ? formatShape(expect.shape) : 'any shape');
  if (dtypeOk && shapeOk) {
    throw new CttaError(`${file}: array is stored in Fortran order (fortran_order: True); expected C order`, {
      fix: 'save np.ascontiguousarray(arr) instead',
    });
  }
  throw new CttaError(
    `${file}: found ${header.dtype} ${formatShape(header.shape)} (descr '${header.descr}'), expected ${expectedDtype} ${expectedShape}`,
  );
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Read and parse the header only (a few hundred bytes), checking the file is long enough. */
export async function readNpyHeader(file: string): Promise<NpyHeader> {
  const fh = await openOrExplain(file);
  try {
    const size = (await fh.stat()).size;
    const probe = Buffer.alloc(Math.min(HEADER_PROBE, size));
    await readFully(fh, probe, 0);
    const header = parseNpyHeader(probe, file);
    const needed = header.dataOffset + elementCount(header.shape) * header.itemSize;
    if (size < needed) {
      throw new CttaError(
        `${file}: truncated: the header announces ${formatShape(header.shape)} ${header.dtype} ` +
          `(${needed} bytes with the header) but the file has ${size} bytes`,
        { fix: 'download or copy the file again' },
      );
    }
    return header;
  } finally {
    await fh.close();
  }
}

async function openOrExplain(file: string) {
  try {
    return await open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CttaError(`${file}: cannot open (${code ?? String(e)})`, {
      fix: code === 'ENOENT' ? 'check the path; the file does not exist' : 'check the file permissions',
      cause: e,
    });
  }
}

async function readFully(fh: Awaited<ReturnType<typeof open>>, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) throw new CttaError(`unexpected end of file after ${position + done} bytes`);
    done += bytesRead;
  }
}

/**
 * Raw bytes of rows [start, start + count) along the first axis, read by byte range. The result
 * is a fresh Uint8Array (not a view of Node's pooled memory).
 */
export async function readNpyRows(file: string, header: NpyHeader, start: number, count: number): Promise<Uint8Array> {
  const rows = header.shape[0] ?? 1;
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
    throw new RangeError(`${file}: rows [${start}, ${start + count}) are outside 0..${rows}`);
  }
  const rowBytes = elementCount(header.shape.slice(1)) * header.itemSize;
  const out = new Uint8Array(count * rowBytes);
  if (out.length === 0) return out;
  const fh = await openOrExplain(file);
  try {
    await readFully(fh, out, header.dataOffset + start * rowBytes);
  } finally {
    await fh.close();
  }
  return out;
}

/** Integers of any integer dtype as an Int32Array; throws if a value does not fit. */
export function decodeIntegers(bytes: Uint8Array, header: NpyHeader, file: string): Int32Array {
  const n = bytes.length / header.itemSize;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(n);
  const le = header.littleEndian;
  for (let i = 0; i < n; i++) {
    let v: number;
    switch (header.dtype) {
      case 'bool':
      case 'uint8':
        v = view.getUint8(i);
        break;
      case 'int8':
        v = view.getInt8(i);
        break;
      case 'uint16':
        v = view.getUint16(i * 2, le);
        break;
      case 'int16':
        v = view.getInt16(i * 2, le);
        break;
      case 'uint32':
        v = view.getUint32(i * 4, le);
        break;
      case 'int32':
        v = view.getInt32(i * 4, le);
        break;
      case 'uint64':
      case 'int64': {
        const big = header.dtype === 'int64' ? view.getBigInt64(i * 8, le) : view.getBigUint64(i * 8, le);
        v = Number(big);
        break;
      }
      default:
        throw new CttaError(`${file}: dtype ${header.dtype} ('${header.descr}') is not an integer type`, {
          fix: 'labels must be saved as integers, e.g. np.int64 or np.uint8',
        });
    }
    if (v > 0x7fffffff || v < -0x80000000) throw new CttaError(`${file}: value ${v} at index ${i} does not fit in int32`);
    out[i] = v;
  }
  return out;
}

/** A whole uint8 array (images), checked against `expect`. */
export async function readNpyUint8(
  file: string,
  expect: Omit<NpyExpectation, 'dtypes'> = {},
): Promise<{ header: NpyHeader; data: Uint8Array }> {
  const header = await readNpyHeader(file);
  checkNpy(header, file, { ...expect, dtypes: ['uint8'] });
  const data = await readNpyRows(file, header, 0, header.shape[0] ?? 1);
  return { header, data };
}

export const INTEGER_DTYPES: readonly NpyDtype[] = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'uint64', 'int64'];

/** A 1-D integer array (labels) as Int32Array. */
export async function readNpyLabels(file: string, expectLength?: number): Promise<Int32Array> {
  const header = await readNpyHeader(file);
  checkNpy(header, file, { dtypes: INTEGER_DTYPES, shape: [expectLength ?? null] });
  const bytes = await readNpyRows(file, header, 0, header.shape[0]!);
  return decodeIntegers(bytes, header, file);
}

// ---- writing -----------------------------------------------------------------------------------

export type NpyWritable = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array | BigInt64Array;

function descrOf(data: NpyWritable): string {
  if (data instanceof Uint8Array) return '|u1';
  if (data instanceof Int8Array) return '|i1';
  if (data instanceof Int16Array) return '<i2';
  if (data instanceof Uint16Array) return '<u2';
  if (data instanceof Int32Array) return '<i4';
  if (data instanceof Uint32Array) return '<u4';
  if (data instanceof Float32Array) return '<f4';
  if (data instanceof Float64Array) return '<f8';
  return '<i8';
}

/**
 * Encode an array as .npy bytes (little-endian, C order), padded as numpy pads: the data start
 * at a multiple of 64 bytes. `version` 1 is what numpy writes unless the header needs more.
 */
export function encodeNpy(data: NpyWritable, shape: readonly number[], options: { version?: 1 | 2 | 3 } = {}): Uint8Array {
  if (elementCount(shape) !== data.length) {
    throw new RangeError(`shape ${formatShape(shape)} holds ${elementCount(shape)} elements, data has ${data.length}`);
  }
  const version = options.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descrOf(data)}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const prefix = version === 1 ? 10 : 12;
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  dict = dict.padEnd(total - prefix - 1, ' ') + '\n';
  const headerBytes = new TextEncoder().encode(dict);
  if (version === 1 && headerBytes.length > 0xffff) throw new RangeError('header too long for .npy version 1.0');
  const out = new Uint8Array(prefix + headerBytes.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, headerBytes.length, true);
  else view.setUint32(8, headerBytes.length, true);
  out.set(headerBytes, prefix);
  // Typed arrays are little-endian on every platform Node runs on.
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), prefix + headerBytes.length);
  return out;
}

export async function writeNpy(
  file: string,
  data: NpyWritable,
  shape: readonly number[],
  options: { version?: 1 | 2 | 3 } = {},
): Promise<void> {
  await writeFile(file, encodeNpy(data, shape, options));
}
