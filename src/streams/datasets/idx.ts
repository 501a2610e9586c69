/**
 * MNIST-style IDX files (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS" section).
 *
 * Layout: a 4-byte magic `00 00 <dtype> <ndim>`, then `ndim` big-endian uint32 dimension sizes,
 * then the data, big-endian, row-major. Files are often gzipped; we detect gzip by its magic bytes
 * (1f 8b), never by the file name, so `foo-idx3-ubyte` holding gzip data and `foo.gz` holding raw
 * data both read correctly.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';

import { CttaError } from '../../errors.js';

const gunzip = promisify(gunzipCb);
const gzip = promisify(gzipCb);

export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDtype;
  /** Dimension sizes, outermost first (e.g. [N, 28, 28] for MNIST images). */
  dims: number[];
  /** Values in native byte order, row-major; a fresh array (never a view of a pooled Buffer). */
  data: IdxData;
}

/** What the caller expects; a mismatch is reported with the expected and the found magic. */
export interface IdxExpectation {
  dtype?: IdxDtype;
  ndim?: number;
  /** Words for the error message, e.g. "images" or "labels". */
  what?: string;
}

interface DtypeInfo {
  code: number;
  size: number;
}

const DTYPES: Record<IdxDtype, DtypeInfo> = {
  uint8: { code: 0x08, size: 1 },
  int8: { code: 0x09, size: 1 },
  int16: { code: 0x0b, size: 2 },
  int32: { code: 0x0c, size: 4 },
  float32: { code: 0x0d, size: 4 },
  float64: { code: 0x0e, size: 8 },
};

function dtypeFromCode(code: number): IdxDtype | undefined {
  for (const [name, info] of Object.entries(DTYPES) as [IdxDtype, DtypeInfo][]) {
    if (info.code === code) return name;
  }
  return undefined;
}

/** The 32-bit magic number for a dtype and rank, e.g. 0x00000803 for uint8 3-D. */
export function idxMagic(dtype: IdxDtype, ndim: number): number {
  return (DTYPES[dtype].code << 8) | ndim;
}

/** Magic for MNIST image files: uint8, 3-D (N x H x W). */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic for MNIST label files: uint8, 1-D (N). */
export const IDX_LABELS_MAGIC = 0x00000801;

function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

function describeMagic(magic: number): string {
  if (magic >>> 16 !== 0) return `${hex32(magic)} (not an IDX header)`;
  const dtype = dtypeFromCode((magic >>> 8) & 0xff);
  const ndim = magic & 0xff;
  return `${hex32(magic)} (${dtype ?? `unknown dtype 0x${((magic >>> 8) & 0xff).toString(16)}`}, ${ndim}-D)`;
}

function describeExpected(expect: IdxExpectation): string {
  const parts: string[] = [];
  if (expect.dtype !== undefined && expect.ndim !== undefined) {
    parts.push(hex32(idxMagic(expect.dtype, expect.ndim)));
  }
  const words = [expect.dtype, expect.ndim === undefined ? undefined : `${expect.ndim}-D`, expect.what]
    .filter((w) => w !== undefined)
    .join(' ');
  if (words) parts.push(parts.length ? `(${words})` : words);
  return parts.join(' ');
}

const CORRUPT_FIX = 'delete it and re-run to download it again, or pass --data-dir DIR pointing at a good copy';

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Parse IDX bytes (already decompressed). `file` is only used in error messages.
 * Checks the magic, the expectation (if any) and that the data length matches the header exactly.
 */
export function parseIdx(bytes: Uint8Array, file: string, expect: IdxExpectation = {}): IdxArray {
  if (bytes.length < 4) {
    throw new CttaError(
      `IDX file ${file} is truncated: it has ${bytes.length} bytes, expected at least a 4-byte header` +
        (expect.dtype !== undefined || expect.ndim !== undefined ? ` with magic ${describeExpected(expect)}` : ''),
      { fix: CORRUPT_FIX },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const dtype = dtypeFromCode(bytes[2]!);
  const ndim = bytes[3]!;
  const expectedMagic =
    expect.dtype !== undefined || expect.ndim !== undefined ? `, expected ${describeExpected(expect)}` : '';
  if (bytes[0] !== 0 || bytes[1] !== 0 || dtype === undefined || ndim === 0) {
    throw new CttaError(
      `${file} is not an IDX file: bad magic number ${describeMagic(magic)}${expectedMagic || ', expected 0x0000TTNN (TT = dtype, NN = number of dims)'}`,
      { fix: CORRUPT_FIX },
    );
  }
  if ((expect.dtype !== undefined && expect.dtype !== dtype) || (expect.ndim !== undefined && expect.ndim !== ndim)) {
    throw new CttaError(`IDX file ${file} has magic number ${describeMagic(magic)}${expectedMagic}`, {
      fix: `check that the file holds ${expect.what ?? 'the expected array'}; if it is damaged, ${CORRUPT_FIX}`,
    });
  }
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    throw new CttaError(
      `IDX file ${file} is truncated: a ${ndim}-D header needs ${headerBytes} bytes, the file has ${bytes.length}`,
      { fix: CORRUPT_FIX },
    );
  }
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const elemSize = DTYPES[dtype].size;
  const count = dims.reduce((a, b) => a * b, 1);
  const expectedBytes = headerBytes + count * elemSize;
  if (bytes.length !== expectedBytes) {
    const what = bytes.length < expectedBytes ? 'truncated' : 'corrupt (longer than its header says)';
    throw new CttaError(
      `IDX file ${file} is ${what}: header declares ${dims.join('x')} ${dtype}, so expected ${expectedBytes} bytes` +
        ` (${headerBytes} header + ${count * elemSize} data), found ${bytes.length}`,
      { fix: CORRUPT_FIX },
    );
  }
  return { dtype, dims, data: decodeData(view, headerBytes, count, dtype) };
}

function decodeData(view: DataView, offset: number, count: number, dtype: IdxDtype): IdxData {
  switch (dtype) {
    case 'uint8':
      // slice() copies into a fresh ArrayBuffer of exactly this size.
      return new Uint8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 'int8':
      return new Int8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 'int16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 'int32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 'float32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case 'float64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/** Read the raw bytes of a file, gunzipping when it starts with the gzip magic. */
export async function readMaybeGzip(path: string): Promise<Uint8Array> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CttaError(`cannot read ${path}: ${code ?? (err as Error).message}`, {
      fix: code === 'ENOENT' ? 'check the path, or pass --data-dir DIR' : 'check the file permissions, or pass --data-dir DIR',
      cause: err,
    });
  }
  if (!isGzip(raw)) return raw;
  try {
    return await gunzip(raw);
  } catch (err) {
    throw new CttaError(
      `${path} starts with the gzip magic 1f 8b but is not valid gzip data (${(err as Error).message}; ${raw.length} compressed bytes): the file is truncated or corrupt`,
      { fix: CORRUPT_FIX, cause: err },
    );
  }
}

/** Read an IDX file, gzipped or raw. */
export async function readIdx(path: string, expect: IdxExpectation = {}): Promise<IdxArray> {
  const bytes = await readMaybeGzip(path);
  return parseIdx(bytes, path, expect);
}

/** Read an MNIST image file (magic 0x00000803): uint8 N x H x W. */
export async function readIdxImages(
  path: string,
): Promise<{ n: number; height: number; width: number; data: Uint8Array }> {
  const arr = await readIdx(path, { dtype: 'uint8', ndim: 3, what: 'images' });
  const [n, height, width] = arr.dims as [number, number, number];
  return { n, height, width, data: arr.data as Uint8Array };
}

/** Read an MNIST label file (magic 0x00000801): uint8 N. */
export async function readIdxLabels(path: string): Promise<Uint8Array> {
  const arr = await readIdx(path, { dtype: 'uint8', ndim: 1, what: 'labels' });
  return arr.data as Uint8Array;
}

function dtypeOf(data: IdxData): IdxDtype {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Float32Array) return 'float32';
  return 'float64';
}

/** Encode an array as IDX bytes (uncompressed). The dtype follows the typed array's type. */
export function encodeIdx(dims: readonly number[], data: IdxData): Uint8Array {
  if (dims.length < 1 || dims.length > 255) {
    throw new CttaError(`IDX arrays need 1 to 255 dimensions, got ${dims.length}`, { fix: 'pass dims such as [N, H, W]' });
  }
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new CttaError(`IDX dimension ${d} in [${dims.join(', ')}] is not an integer in 0..2^32-1`, {
        fix: 'pass whole-number dimension sizes',
      });
    }
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new CttaError(`IDX dims [${dims.join(', ')}] hold ${count} values but the data has ${data.length}`, {
      fix: 'make the product of dims equal the data length',
    });
  }
  const dtype = dtypeOf(data);
  const size = DTYPES[dtype].size;
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + count * size);
  const view = new DataView(out.buffer);
  view.setUint32(0, idxMagic(dtype, dims.length), false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  switch (dtype) {
    case 'uint8':
    case 'int8':
      out.set(new Uint8Array(data.buffer, data.byteOffset, count), header);
      break;
    case 'int16':
      for (let i = 0; i < count; i++) view.setInt16(header + 2 * i, data[i]!, false);
      break;
    case 'int32':
      for (let i = 0; i < count; i++) view.setInt32(header + 4 * i, data[i]!, false);
      break;
    case 'float32':
      for (let i = 0; i < count; i++) view.setFloat32(header + 4 * i, data[i]!, false);
      break;
    case 'float64':
      for (let i = 0; i < count; i++) view.setFloat64(header + 8 * i, data[i]!, false);
      break;
  }
  return out;
}

/**
 * Write an IDX file (gzipped when `gzip` is true), creating the parent directory. The file is
 * written to a temporary name and renamed, so readers never see a half-written file.
 */
export async function writeIdx(
  path: string,
  dims: readonly number[],
  data: IdxData,
  options: { gzip?: boolean } = {},
): Promise<void> {
  const raw = encodeIdx(dims, data);
  const bytes = options.gzip ? await gzip(raw) : raw;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${dirname(path)}/.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new CttaError(`cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      fix: 'check that the directory exists and is writable',
      cause: err,
    });
  }
}
