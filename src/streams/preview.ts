/**
 * A picture of what the model will see: one row per domain, the first images the stream shows
 * under it, upscaled, with the domain's name on the left.
 */
import sharp, { type OverlayOptions } from 'sharp';
import type { Stream } from './stream.js';

export interface PreviewOptions {
  perDomain: number;
  /** Integer upscaling factor of each image (nearest neighbour, so pixels stay visible). */
  scale: number;
}

const LABEL_WIDTH = 170;
const GAP = 2;

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[ch]!);
}

export async function renderPreview(stream: Stream, options: PreviewOptions): Promise<Buffer> {
  const { ordering: o, source } = stream;
  const { height: h, width: w, channels: c } = source;
  const cell = { w: w * options.scale, h: h * options.scale };
  const rows = o.domains.map((domain, d) => {
    const samples: number[] = [];
    for (let p = 0; p < o.length && samples.length < options.perDomain; p++) if (o.domain[p] === d) samples.push(o.order[p]!);
    return { domain, samples: Int32Array.from(samples) };
  });
  const width = LABEL_WIDTH + options.perDomain * (cell.w + GAP);
  const height = rows.length * (cell.h + GAP);
  const composites: OverlayOptions[] = [];
  for (const [r, row] of rows.entries()) {
    const px = await source.read(row.samples, row.domain);
    for (let i = 0; i < row.samples.length; i++) {
      const tile = await sharp(Buffer.from(px.subarray(i * h * w * c, (i + 1) * h * w * c)), { raw: { width: w, height: h, channels: c as 1 | 3 } })
        .resize(cell.w, cell.h, { kernel: 'nearest' })
        .toColourspace('srgb')
        .png()
        .toBuffer();
      composites.push({ input: tile, left: LABEL_WIDTH + i * (cell.w + GAP), top: r * (cell.h + GAP) });
    }
  }
  const labels = rows
    .map((row, r) => `<text x="6" y="${r * (cell.h + GAP) + cell.h / 2 + 5}" font-family="sans-serif" font-size="13" fill="#222">${escapeXml(row.domain.name)}</text>`)
    .join('');
  composites.push({ input: Buffer.from(`<svg width="${LABEL_WIDTH}" height="${height}" xmlns="http://www.w3.org/2000/svg">${labels}</svg>`), left: 0, top: 0 });
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(composites).png().toBuffer();
}
