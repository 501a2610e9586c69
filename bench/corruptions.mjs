// Throughput of the corruption engine: images/s per corruption at severity 5 on 1000 real
// Fashion-MNIST test images (28x28 grey), single thread.
//
//   npx tsc -p tsconfig.json && node bench/corruptions.mjs [count] [severity]
//
// Not part of the test run. Numbers depend on the machine and on whatever else runs on it.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

import { CORRUPTIONS, EXTRA_CORRUPTIONS, corruptBatch } from '../dist/streams/corruptions/index.js';

const count = Number(process.argv[2] ?? 1000);
const severity = Number(process.argv[3] ?? 5);

const raw = gunzipSync(readFileSync(new URL('../data/fashion-mnist/t10k-images-idx3-ubyte.gz', import.meta.url)));
if (raw.readUInt32BE(0) !== 0x00000803) throw new Error('not an IDX uint8 3-D file');
const [n, h, w] = [raw.readUInt32BE(4), raw.readUInt32BE(8), raw.readUInt32BE(12)];
const used = Math.min(count, n);
const images = new Uint8Array(raw.subarray(16, 16 + used * h * w));

const rows = [];
for (const name of [...CORRUPTIONS, ...EXTRA_CORRUPTIONS]) {
  // Warm-up (JIT, sharp start-up, frost overlay decoding) on a few images, not timed.
  await corruptBatch(images.subarray(0, 8 * h * w), 8, h, w, 1, name, severity, { seed: 0, startIndex: 0 });
  const t0 = process.hrtime.bigint();
  await corruptBatch(images, used, h, w, 1, name, severity, { seed: 0, startIndex: 0 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  rows.push({ name, ms, perSec: (used / ms) * 1000 });
}

console.log(`corruption engine, severity ${severity}, ${used} Fashion-MNIST images (${h}x${w}x1), node ${process.version}`);
console.log('');
console.log('| corruption | time (ms) | images/s |');
console.log('| --- | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${r.ms.toFixed(0)} | ${Math.round(r.perSec)} |`);
const total = rows.reduce((s, r) => s + r.ms, 0);
console.log(`| all ${rows.length} | ${total.toFixed(0)} | ${Math.round((rows.length * used) / (total / 1000))} |`);
