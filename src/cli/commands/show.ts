import { Command } from 'commander';
import { loadScenario } from '../../streams/scenario.js';
import { renderPreview } from '../../streams/preview.js';
import { openStream } from '../../streams/stream.js';
import { checkOutputFile, requireExtension, writeFileAtomic } from '../../util/output-dir.js';
import { intOption } from '../parse.js';

export function showCommand(): Command {
  return new Command('show')
    .description('draw a grid of the images a scenario streams: one row per domain (corruption, severity)')
    .argument('<scenario>', 'scenario file or shipped name (ctta list scenarios)')
    .requiredOption('--out <file.png>', 'PNG file to write')
    .option('--per-domain <n>', 'images per row', intOption('--per-domain', 1), 8)
    .option('--scale <n>', 'upscaling factor of each image', intOption('--scale', 1), 3)
    .option('--seed <n>', 'stream seed', intOption('--seed'), 0)
    .option('--data-dir <dir>', 'where the dataset files are')
    .addHelpText('after', `
Examples:
  ctta show fmnist-c-continual --out continual.png
  ctta show fmnist-c-gradual --per-domain 4 --out gradual.png`)
    .action(async (name: string, o) => {
      // The grid is a PNG: refuse another extension (rather than write PNG bytes into x.svg),
      // and a bad --out (a file in the path, a folder, /proc, read-only), before any work.
      requireExtension(o.out, ['.png'], 'show writes a PNG image');
      checkOutputFile(o.out);
      const scenario = loadScenario(name);
      const stream = await openStream(scenario, o.seed, { dataDir: o.dataDir });
      await writeFileAtomic(o.out, await renderPreview(stream, { perDomain: o.perDomain, scale: o.scale }));
      console.log(`wrote ${o.out}: ${stream.ordering.domains.length} domains x ${o.perDomain} images of ${scenario.name} (seed ${o.seed})`);
    });
}
