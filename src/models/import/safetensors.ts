/**
 * safetensors (Hugging Face's format for a state_dict): an 8-byte little-endian header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`,
 * then the tensors' raw little-endian bytes, offsets relative to the end of the header.
 * Read in TypeScript so importing a PyTorch checkpoint needs no Python.
 */
import { readFileSync } from 'node:fs';
import { CttaError } from '../../errors.js';

export interface SafeTensor {
  dtype: string;
  shape: number[];
  /** float32 values (F32, F16, BF16 and F64 are converted; integer tensors are left out). */
  values: Float32Array;
}

/** Bytes per element of the dtypes a state_dict holds. */
const ELEMENT_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

const FIX = 'save the state_dict with safetensors.torch.save_file(model.state_dict(), "model.safetensors")';

function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function toFloat32(dtype: string, bytes: Uint8Array, count: number): Float32Array | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = half(view.getUint16(2 * i, true));
      return out;
    case 'BF16':
      for (let i = 0; i < count; i++) out[i] = new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0]!;
      return out;
    default:
      return undefined; // integer buffers such as BatchNorm's num_batches_tracked
  }
}

/** Reads every floating-point tensor of a safetensors file; any damage names the file and the fix. */
export function readSafetensors(file: string): Map<string, SafeTensor> {
  return readSafetensorsFile(file).tensors;
}

/** The same, with the file's bytes (read once: a caller may hash them). */
export function readSafetensorsFile(file: string): { bytes: Uint8Array; tensors: Map<string, SafeTensor> } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new CttaError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { fix: 'check the path' });
  }
  return { bytes, tensors: parseSafetensors(bytes, file) };
}

/** The floating-point tensors of a safetensors file's bytes; `file` names it in messages. */
function parseSafetensors(bytes: Uint8Array, file: string): Map<string, SafeTensor> {
  if (bytes.length < 8) throw new CttaError(`${file} is not a safetensors file (${bytes.length} bytes)`, { fix: FIX });
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength <= 0 || 8 + headerLength > bytes.length) {
    throw new CttaError(`${file} is not a safetensors file (header length ${headerLength} for a ${bytes.length}-byte file)`, {
      fix: `${FIX}; a PyTorch .pt/.pth file (a zip or pickle) cannot be read without Python: convert it first (README, "Models and checkpoints")`,
    });
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    throw new CttaError(`${file}: the safetensors header is not valid JSON`, { fix: FIX });
  }
  const data = bytes.subarray(8 + headerLength);
  const out = new Map<string, SafeTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: offsets } = entry ?? ({} as never);
    const size = ELEMENT_BYTES[dtype];
    const count = Array.isArray(shape) ? shape.reduce((a, b) => a * b, 1) : NaN;
    if (size === undefined || !Array.isArray(offsets) || offsets.length !== 2 || !Number.isInteger(count)) {
      throw new CttaError(`${file}: tensor ${name} has an unreadable entry (${JSON.stringify(entry)})`, { fix: FIX });
    }
    const [begin, end] = offsets;
    if (end - begin !== count * size || begin < 0 || end > data.length) {
      throw new CttaError(`${file}: tensor ${name} (${dtype} ${JSON.stringify(shape)}) needs ${count * size} bytes at [${begin}, ${end}) of ${data.length}: the file is truncated or damaged`, { fix: FIX });
    }
    const values = toFloat32(dtype, data.subarray(begin, end), count);
    if (values) out.set(name, { dtype, shape, values });
  }
  return out;
}
