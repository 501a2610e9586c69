/**
 * Fashion-MNIST (Zalando Research, MIT licence): 28x28 grey images of 10 clothing classes,
 * 60,000 train / 10,000 test, stored as MNIST-style IDX files.
 *
 * Look-up order for a split (both the images and the labels file must be in the same place):
 *   1. the `dataDir` option (the CLI's --data-dir), else env CTTA_DATA_DIR; each may hold the
 *      files directly or in a `fashion-mnist/` subfolder. A folder the user names that holds
 *      either file of the split (gzipped or raw, directly or in the subfolder) must hold both in
 *      one place: the look-up stops there and loading is an error naming the missing file, never
 *      a silent fall-back to another copy. A folder holding neither goes on to the places below.
 *   2. the user cache: $XDG_CACHE_HOME/ctta/fashion-mnist or ~/.cache/ctta/fashion-mnist
 *   3. the test split shipped in this repository: <repo>/data/fashion-mnist
 *   4. Debian's package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist
 *   5. a download from the official mirror into the user cache, checked against known checksums.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

import cliProgress from 'cli-progress';

import { CttaError } from '../../errors.js';
import { readIdxImages, readIdxLabels } from './idx.js';
import type { DatasetSplit, DownloadProgress, ImageDataset, LoadDatasetOptions } from './types.js';

export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Bag',
  'Sneaker',
  'Ankle boot',
]);

/** File names without the `.gz` suffix; both `<name>.gz` and `<name>` are accepted on disk. */
export const FASHION_MNIST_FILES: Readonly<Record<DatasetSplit, { images: string; labels: string }>> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

export const FASHION_MNIST_MIRROR = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';

/** Subfolder name looked for inside --data-dir / CTTA_DATA_DIR. */
const SUBFOLDER = 'fashion-mnist';

export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/**
 * Accepted digests of a downloaded `.gz` file. A file passes when its md5 or sha256 is in the
 * lists, or when the sha256 of its decompressed bytes equals `contentSha256` (the same data
 * re-compressed by a different gzip, as Debian's package is).
 */
export interface FileChecksum {
  md5?: readonly string[];
  sha256?: readonly string[];
  contentSha256?: string;
}

/**
 * md5: the official mirror's files (as published in the Fashion-MNIST README), then the Debian
 * package's re-compressed copies; sha256: the Debian copies; contentSha256: the IDX bytes inside,
 * which both share.
 */
export const FASHION_MNIST_CHECKSUMS: Readonly<Record<string, FileChecksum>> = {
  'train-images-idx3-ubyte.gz': {
    md5: ['8d4fb7e6c68d591d4c3dfef9ec88bf0d', 'cf8536b0aa1a6ac5fa3f23001093305c'],
    sha256: ['b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7'],
    contentSha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
  },
  'train-labels-idx1-ubyte.gz': {
    md5: ['25c81989df183df01b3e8a0aad5dffbe', '10bea18fdb374794d4bb42e356e600c9'],
    sha256: ['0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056'],
    contentSha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
  },
  't10k-images-idx3-ubyte.gz': {
    md5: ['bef4ecab320f06d8554ea6380940ec79', 'f78720b4224f21cce2f2ccf2d7a94c9a'],
    sha256: ['cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa'],
    contentSha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
  },
  't10k-labels-idx1-ubyte.gz': {
    md5: ['bb300cfdad3c16e7a12a480ee83cd310', '0d30e22e447f3c33dab9ed536400ac01'],
    sha256: ['8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05'],
    contentSha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
  },
};

export interface FashionMnistOptions extends LoadDatasetOptions {
  /** Base URL of the mirror; default env CTTA_FASHION_MNIST_MIRROR, else the official one. */
  mirror?: string;
  /** Accepted checksums per `.gz` file name (tests inject their own). */
  checksums?: Readonly<Record<string, FileChecksum>>;
  /** Override the user cache directory (the directory that holds the files). */
  cacheDir?: string;
  /** Override the shipped-split directory; null skips it. */
  shippedDir?: string | null;
  /** Override the Debian directory; null skips it. */
  systemDir?: string | null;
  /** Abort a download when no data arrives for this long (default 60 s). */
  idleTimeoutMs?: number;
}

export type PlaceKind = 'data-dir' | 'env' | 'cache' | 'shipped' | 'system' | 'download';

export interface PlaceTried {
  kind: PlaceKind;
  /** Human words for the place, e.g. "--data-dir" or "user cache". */
  label: string;
  dir: string;
  /** Paths of the split's files that were present (when only one of the two was). */
  found: string[];
  /** File names (without .gz) that were missing. */
  missing: string[];
}

export interface FashionMnistLocation {
  split: DatasetSplit;
  kind: PlaceKind;
  dir: string;
  images: string;
  labels: string;
}

/** A folder the user named (--data-dir / CTTA_DATA_DIR) that holds only part of a split. */
export interface PartialSplit extends PlaceTried {
  /** The folder as named (`dir` is it or its fashion-mnist/ subfolder). */
  root: string;
}

export interface LocateResult {
  split: DatasetSplit;
  found: FashionMnistLocation | undefined;
  /** Every place looked at, in order, up to and including the one that had the files. */
  tried: PlaceTried[];
  /**
   * Set when the look-up stopped at a folder the user named because it holds some but not all
   * of the split's files (`found` is then undefined): loading that split is an error.
   */
  partial?: PartialSplit;
}

/** The user cache directory for Fashion-MNIST. */
export function fashionMnistCacheDir(options: Pick<FashionMnistOptions, 'cacheDir'> = {}): string {
  if (options.cacheDir) return resolve(options.cacheDir);
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache');
  return join(base, 'ctta', 'fashion-mnist');
}

/** <repo>/data/fashion-mnist: this file lives in src/streams/datasets or dist/streams/datasets. */
export function shippedFashionMnistDir(): string {
  return fileURLToPath(new URL('../../../data/fashion-mnist/', import.meta.url)).replace(/[\\/]$/, '');
}

function mirrorBase(options: FashionMnistOptions): string {
  const base = options.mirror || process.env.CTTA_FASHION_MNIST_MIRROR || FASHION_MNIST_MIRROR;
  return base.endsWith('/') ? base : base + '/';
}

function checkSplit(split: string): asserts split is DatasetSplit {
  if (split !== 'train' && split !== 'test') {
    throw new CttaError(`unknown split "${split}" for fashion-mnist`, { fix: 'use "train" or "test"' });
  }
}

interface Place {
  kind: PlaceKind;
  label: string;
  dir: string;
  /** For the folder the user named and its subfolder: the folder as named (resolved). */
  root?: string;
}

function places(options: FashionMnistOptions): Place[] {
  const out: Place[] = [];
  const userDir = options.dataDir
    ? { kind: 'data-dir' as const, label: '--data-dir', dir: options.dataDir }
    : process.env.CTTA_DATA_DIR
      ? { kind: 'env' as const, label: 'CTTA_DATA_DIR', dir: process.env.CTTA_DATA_DIR }
      : undefined;
  if (userDir) {
    const dir = resolve(userDir.dir);
    // A folder the user named explicitly must exist: silently falling back to other copies
    // would hide a typo and run on data they did not choose.
    if (!existsSync(dir)) {
      throw new CttaError(`${userDir.label} ${userDir.dir} does not exist`, {
        fix: `point ${userDir.label} at the folder holding the Fashion-MNIST .gz files, or leave it out to use the default look-up`,
      });
    }
    out.push({ ...userDir, dir, root: dir }, { ...userDir, dir: join(dir, SUBFOLDER), root: dir });
  }
  out.push({ kind: 'cache', label: 'user cache', dir: fashionMnistCacheDir(options) });
  const shipped = options.shippedDir === undefined ? shippedFashionMnistDir() : options.shippedDir;
  if (shipped !== null) out.push({ kind: 'shipped', label: 'shipped test split', dir: resolve(shipped) });
  const system = options.systemDir === undefined ? DEBIAN_FASHION_MNIST_DIR : options.systemDir;
  if (system !== null) out.push({ kind: 'system', label: 'Debian dataset-fashion-mnist', dir: resolve(system) });
  // The same directory reached two ways is only looked at once.
  const seen = new Set<string>();
  return out.filter((p) => (seen.has(p.dir) ? false : (seen.add(p.dir), true)));
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** `<dir>/<name>.gz` or `<dir>/<name>`, whichever exists (gz first). */
function findFile(dir: string, name: string): string | undefined {
  for (const candidate of [join(dir, name + '.gz'), join(dir, name)]) {
    if (isFile(candidate)) return candidate;
  }
  return undefined;
}

/** Find a split's two files on disk, without downloading. */
export function locateFashionMnist(split: DatasetSplit, options: FashionMnistOptions = {}): LocateResult {
  checkSplit(split);
  const names = FASHION_MNIST_FILES[split];
  const tried: PlaceTried[] = [];
  for (const { root, ...place } of places(options)) {
    const images = findFile(place.dir, names.images);
    const labels = findFile(place.dir, names.labels);
    const found = [images, labels].filter((p): p is string => p !== undefined);
    const missing = [images ? undefined : names.images, labels ? undefined : names.labels].filter(
      (n): n is string => n !== undefined,
    );
    const entry: PlaceTried = { ...place, found, missing };
    tried.push(entry);
    if (images && labels) {
      return { split, found: { split, kind: place.kind, dir: place.dir, images, labels }, tried };
    }
    // Part of the split in a folder the user named: stop here rather than fall back to a copy
    // they did not choose (the folder is checked before its subfolder, so a stray file directly
    // in it is not hidden by a complete copy in the subfolder either).
    if (root !== undefined && found.length > 0) {
      return { split, found: undefined, tried, partial: { ...entry, root } };
    }
  }
  return { split, found: undefined, tried };
}

/** The error for a split of which a folder the user named holds only part. */
function partialSplitError(split: DatasetSplit, p: PartialSplit): CttaError {
  const found = p.found.map((f) => relative(p.root, f)).join(', ');
  const missing = p.missing.map((n) => `${n}.gz`).join(', ');
  const raw = p.missing.join(', ');
  return new CttaError(`${p.root} holds ${found} but not ${missing} of the fashion-mnist ${split} split`, {
    fix:
      `add ${missing} (or un-gzipped ${raw}) to ${p.dir}, beside the other file, ` +
      `or point ${p.label} at a folder holding the whole split (or drop it for the default look-up)`,
  });
}

function describeTried(t: PlaceTried): string {
  const partial = t.found.length ? ` (has ${t.found.map((p) => p.slice(t.dir.length + 1)).join(', ')} only)` : '';
  return `${t.label} ${t.dir}${partial}`;
}

function hexDigest(algorithm: 'md5' | 'sha256', bytes: Uint8Array): string {
  return createHash(algorithm).update(bytes).digest('hex');
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause as { code?: string; message?: string } | undefined;
    const detail = cause ? cause.message || cause.code : undefined;
    return detail && !err.message.includes(detail) ? `${err.message} (${detail})` : err.message;
  }
  return String(err);
}

function makeProgressReporter(
  file: string,
  url: string,
  dest: string,
  onProgress: FashionMnistOptions['onProgress'],
): { update(received: number, total: number | undefined): void; stop(): void } {
  if (onProgress) {
    return {
      update: (receivedBytes, totalBytes) => onProgress({ file, url, receivedBytes, totalBytes }),
      stop: () => {},
    };
  }
  if (!process.stderr.isTTY) {
    process.stderr.write(`ctta: downloading ${url} -> ${dest}\n`);
    return { update: () => {}, stop: () => {} };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${file} [{bar}] {percentage}% | {value}/{total} KiB | ETA {eta_formatted}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(received, total) {
      const kib = Math.round(received / 1024);
      const totalKib = Math.max(Math.round((total ?? received) / 1024), kib, 1);
      if (!started) {
        bar.start(totalKib, kib);
        started = true;
      } else {
        if (total === undefined) bar.setTotal(totalKib);
        bar.update(kib);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/**
 * Download one file to `dest`: streamed into a temporary file next to it, checked against
 * `checksum`, then renamed. On any failure the temporary file is removed and a CttaError thrown.
 */
export async function downloadVerified(
  url: string,
  dest: string,
  checksum: FileChecksum,
  options: { onProgress?: (p: DownloadProgress) => void; idleTimeoutMs?: number } = {},
): Promise<void> {
  const file = dest.slice(dirname(dest).length + 1);
  try {
    await mkdir(dirname(dest), { recursive: true });
  } catch (err) {
    throw new CttaError(`cannot create the cache directory ${dirname(dest)}: ${errorText(err)}`, {
      fix: 'make it writable, set XDG_CACHE_HOME to a writable directory, or pass --data-dir DIR',
      cause: err,
    });
  }
  const tmp = `${dest}.${process.pid}.${Math.random().toString(36).slice(2)}.part`;
  const idleMs = options.idleTimeoutMs ?? 60_000;
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new Error(`no data received for ${idleMs / 1000} s`)), idleMs);
  };
  const progress = makeProgressReporter(file, url, dest, options.onProgress);
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  try {
    arm();
    let res: Response;
    try {
      res = await fetch(url, { signal: controller.signal });
    } catch (err) {
      throw new CttaError(`download of ${url} failed: ${errorText(controller.signal.reason ?? err)}`, {
        fix: 'check the network connection or set CTTA_FASHION_MNIST_MIRROR to a reachable mirror',
        cause: err,
      });
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => {});
      throw new CttaError(`download of ${url} failed: HTTP ${res.status} ${res.statusText}`.trimEnd(), {
        fix: 'retry later or set CTTA_FASHION_MNIST_MIRROR to another mirror',
      });
    }
    const lengthHeader = res.headers.get('content-length');
    // fetch undoes a Content-Encoding, after which Content-Length no longer counts the bytes we see.
    const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
    const total = !encoded && lengthHeader && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const handle = await open(tmp, 'w');
    let received = 0;
    try {
      progress.update(0, total);
      for await (const chunk of res.body) {
        arm();
        await handle.write(chunk);
        md5.update(chunk);
        sha256.update(chunk);
        received += chunk.length;
        progress.update(received, total);
      }
    } catch (err) {
      if (err instanceof CttaError) throw err;
      throw new CttaError(
        `download of ${url} failed after ${received} bytes: ${errorText(controller.signal.reason ?? err)}`,
        { fix: 'retry, check the network connection, or set CTTA_FASHION_MNIST_MIRROR to another mirror', cause: err },
      );
    } finally {
      progress.stop();
      await handle.close();
    }
    if (total !== undefined && received !== total) {
      throw new CttaError(`download of ${url} stopped early: got ${received} of ${total} bytes`, {
        fix: 'retry, or set CTTA_FASHION_MNIST_MIRROR to another mirror',
      });
    }
    const gotMd5 = md5.digest('hex');
    const gotSha = sha256.digest('hex');
    if (!checksumMatches(checksum, gotMd5, gotSha, tmp)) {
      const expected = [
        checksum.md5?.length ? `md5 ${checksum.md5.join(' or ')}` : undefined,
        checksum.sha256?.length ? `sha256 ${checksum.sha256.join(' or ')}` : undefined,
        checksum.contentSha256 ? `content sha256 ${checksum.contentSha256}` : undefined,
      ].filter(Boolean);
      throw new CttaError(
        `checksum mismatch for ${url}: got md5 ${gotMd5} sha256 ${gotSha} (${received} bytes), expected ${expected.join(' / ') || 'no known checksum'}; the file was not kept`,
        { fix: 'retry later, set CTTA_FASHION_MNIST_MIRROR to another mirror, or `apt-get install -y dataset-fashion-mnist`' },
      );
    }
    await rename(tmp, dest);
  } finally {
    clearTimeout(timer);
    await rm(tmp, { force: true });
  }
}

function checksumMatches(checksum: FileChecksum, md5: string, sha256: string, path: string): boolean {
  if (checksum.md5?.includes(md5) || checksum.sha256?.includes(sha256)) return true;
  if (!checksum.contentSha256) return false;
  try {
    const bytes = readFileSync(path);
    const content = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
    return hexDigest('sha256', content) === checksum.contentSha256;
  } catch {
    return false;
  }
}

/**
 * Download a split's missing files from the mirror into the user cache.
 * Returns where the split now is.
 */
export async function downloadFashionMnist(
  split: DatasetSplit,
  options: FashionMnistOptions = {},
): Promise<FashionMnistLocation> {
  checkSplit(split);
  const dir = fashionMnistCacheDir(options);
  const base = mirrorBase(options);
  const checksums = options.checksums ?? FASHION_MNIST_CHECKSUMS;
  const names = FASHION_MNIST_FILES[split];
  const paths: string[] = [];
  for (const name of [names.images, names.labels]) {
    const existing = findFile(dir, name);
    if (existing) {
      paths.push(existing);
      continue;
    }
    const gz = name + '.gz';
    const checksum = checksums[gz];
    if (!checksum) {
      throw new CttaError(`no checksum is known for ${gz}, so it cannot be downloaded safely`, {
        fix: 'pass --data-dir DIR holding the file',
      });
    }
    const dest = join(dir, gz);
    await downloadVerified(base + gz, dest, checksum, {
      onProgress: options.onProgress,
      idleTimeoutMs: options.idleTimeoutMs,
    });
    paths.push(dest);
  }
  return { split, kind: 'download', dir, images: paths[0]!, labels: paths[1]! };
}

/** Read the two files of a located split and check they agree. */
export async function readFashionMnist(location: FashionMnistLocation): Promise<ImageDataset> {
  const [images, labels] = await Promise.all([readIdxImages(location.images), readIdxLabels(location.labels)]);
  const fix = 'delete the files and re-run to download them again, or pass --data-dir DIR with a good copy';
  if (images.height !== 28 || images.width !== 28) {
    throw new CttaError(
      `${location.images} holds ${images.height}x${images.width} images, expected 28x28 Fashion-MNIST images`,
      { fix },
    );
  }
  if (images.n !== labels.length) {
    throw new CttaError(
      `${location.images} has ${images.n} images but ${location.labels} has ${labels.length} labels`,
      { fix },
    );
  }
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l >= FASHION_MNIST_CLASSES.length) {
      throw new CttaError(
        `${location.labels} has label ${l} at index ${i}, expected 0..${FASHION_MNIST_CLASSES.length - 1}`,
        { fix },
      );
    }
    out[i] = l;
  }
  return {
    name: 'fashion-mnist',
    split: location.split,
    images: images.data,
    labels: out,
    n: images.n,
    height: 28,
    width: 28,
    channels: 1,
    classNames: [...FASHION_MNIST_CLASSES],
    source: location.dir,
  };
}

/** Load a Fashion-MNIST split from the first place that has it, downloading if allowed. */
export async function loadFashionMnist(
  split: DatasetSplit,
  options: FashionMnistOptions = {},
): Promise<ImageDataset> {
  checkSplit(split);
  const located = locateFashionMnist(split, options);
  if (located.partial) throw partialSplitError(split, located.partial);
  let location = located.found;
  if (!location) {
    const names = FASHION_MNIST_FILES[split];
    const tried = located.tried.map(describeTried).join('; ');
    const wanted = `${names.images}.gz + ${names.labels}.gz`;
    const localFixes = `run \`apt-get install -y dataset-fashion-mnist\`, or pass --data-dir DIR (or set CTTA_DATA_DIR) holding ${wanted}`;
    if (options.allowDownload === false) {
      throw new CttaError(`Fashion-MNIST ${split} split (${wanted}) not found; tried: ${tried}; download disabled`, {
        fix: `${localFixes}, or allow the download (needs network access)`,
      });
    }
    try {
      location = await downloadFashionMnist(split, options);
    } catch (err) {
      const fix = err instanceof CttaError && err.fix ? `${err.fix}; or ${localFixes}` : localFixes;
      throw new CttaError(
        `Fashion-MNIST ${split} split (${wanted}) not found; tried: ${tried}; download from ${mirrorBase(options)} failed: ${errorText(err).replace(/^download of \S+ failed: /, '')}`,
        { fix, cause: err },
      );
    }
  }
  return readFashionMnist(location);
}
