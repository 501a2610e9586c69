/**
 * The six frost photographs of ImageNet-C (data/frost/, Apache-2.0, see data/frost/NOTICE),
 * decoded once with sharp and kept in memory as RGB.
 */
import { fileURLToPath } from 'node:url';

import sharp from 'sharp';

import { CttaError } from '../../errors.js';
import { roundHalfEven } from './filters.js';

/** An RGB uint8 picture, HWC. */
export interface Overlay {
  data: Uint8Array;
  height: number;
  width: number;
}

/** In the original's order; its `np.random.randint(5)` only ever picks the first five. */
export const FROST_FILES = ['frost1.png', 'frost2.png', 'frost3.png', 'frost4.jpg', 'frost5.jpg', 'frost6.jpg'] as const;

/**
 * data/frost at the repository root. This module lives three levels below the root both as
 * source (src/streams/corruptions/) and compiled (dist/streams/corruptions/).
 */
export function frostDir(): string {
  return fileURLToPath(new URL('../../../data/frost/', import.meta.url));
}

let fullSize: Promise<Overlay[]> | undefined;
let cifarSize: Promise<Overlay[]> | undefined;

async function decode(file: string): Promise<Overlay> {
  const path = frostDir() + file;
  try {
    // cv2.imread(..., IMREAD_COLOR) drops the PNGs' alpha channel without blending: so does removeAlpha.
    const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), height: info.height, width: info.width };
  } catch (err) {
    throw new CttaError(`cannot read the frost overlay ${path}: ${(err as Error).message}`, {
      fix: 'the frost corruption needs data/frost/frost1.png .. frost6.jpg from the ctta package; reinstall it or restore the folder',
      exitCode: 1,
      cause: err,
    });
  }
}

/** The six photographs at their own size. */
export function frostOverlays(): Promise<Overlay[]> {
  if (!fullSize) {
    fullSize = Promise.all(FROST_FILES.map(decode));
    fullSize.catch(() => {
      fullSize = undefined; // a later call may succeed once the files are back
    });
  }
  return fullSize;
}

/**
 * `cv2.resize(frost, (0, 0), fx=0.2, fy=0.2)` (INTER_LINEAR), as make_cifar_c.py does before
 * cropping. Output size is cvRound(size * 0.2); OpenCV maps output pixel d to source
 * (d + 0.5) * 5 - 0.5 = 5d + 2, an integer, so bilinear interpolation picks that pixel exactly.
 */
export function decimateByFive(o: Overlay): Overlay {
  const height = roundHalfEven(o.height * 0.2);
  const width = roundHalfEven(o.width * 0.2);
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(5 * y + 2, o.height - 1);
    for (let x = 0; x < width; x++) {
      const sx = Math.min(5 * x + 2, o.width - 1);
      const s = (sy * o.width + sx) * 3;
      const d = (y * width + x) * 3;
      data[d] = o.data[s];
      data[d + 1] = o.data[s + 1];
      data[d + 2] = o.data[s + 2];
    }
  }
  return { data, height, width };
}

/** The six photographs reduced by five (the CIFAR-10-C overlays). */
export function cifarFrostOverlays(): Promise<Overlay[]> {
  if (!cifarSize) {
    cifarSize = frostOverlays().then((all) => all.map(decimateByFive));
    cifarSize.catch(() => {
      cifarSize = undefined;
    });
  }
  return cifarSize;
}

/** An overlay scaled up (sharp, bilinear) so that it is strictly larger than HxW. */
export async function coverOverlay(o: Overlay, height: number, width: number): Promise<Overlay> {
  const scale = Math.max((height + 1) / o.height, (width + 1) / o.width);
  const h = Math.ceil(o.height * scale);
  const w = Math.ceil(o.width * scale);
  const { data, info } = await sharp(o.data, { raw: { width: o.width, height: o.height, channels: 3 } })
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), height: info.height, width: info.width };
}
