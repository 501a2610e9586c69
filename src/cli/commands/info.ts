import { Command } from 'commander';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend } from '../../backend/index.js';
import { listModels } from '../../models/registry.js';
import { datasetNames } from '../../streams/datasets/index.js';
import { locateFashionMnist } from '../../streams/datasets/fashion-mnist.js';
import { repoRoot } from '../../util/paths.js';
import { packageVersion } from '../../util/version.js';
import { intOption } from '../parse.js';

export function infoCommand(): Command {
  return new Command('info')
    .description('show the compute backend that would run (and why others were skipped), versions, datasets and models')
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .option('--threads <n>', 'start the wasm backend with n threads (as ctta run --threads)', intOption('--threads', 1), 1)
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Examples:
  ctta info
  ctta info --backend wasm --json`)
    .action(async (o) => {
      const backend = await setBackend(o.backend, { threads: o.threads });
      const data = (['test', 'train'] as const).map((split) => {
        const found = locateFashionMnist(split, { allowDownload: false });
        const partial = found.partial ? `${found.partial.dir} holds only part of it (missing ${found.partial.missing.join(', ')})` : undefined;
        return { split, found: found.found?.dir ?? null, ...(partial ? { partial } : {}), tried: found.tried.map((t) => t.dir) };
      });
      const modelsDir = join(repoRoot(), 'models');
      const checkpoints = existsSync(modelsDir)
        ? readdirSync(modelsDir).filter((d) => existsSync(join(modelsDir, d, 'manifest.json')))
        : [];
      const info = {
        ctta: packageVersion(),
        node: process.version,
        backend: { name: backend.name, tfBackend: backend.tfBackend, threads: backend.threads, skipped: backend.skipped, versions: backend.versions },
        datasets: datasetNames(),
        fashionMnist: data,
        zoo: listModels(),
        checkpoints,
      };
      if (o.json) {
        console.log(JSON.stringify(info, null, 2));
        return;
      }
      console.log(`ctta ${info.ctta} on Node ${info.node}`);
      console.log(`backend: ${backend.name} (tfjs backend "${backend.tfBackend}"${backend.name === 'wasm' ? `, ${backend.threads} thread(s)` : ''})`);
      for (const s of backend.skipped) console.log(`  skipped ${s.name}: ${s.reason}`);
      console.log(`versions: ${Object.entries(backend.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      for (const d of data) console.log(`fashion-mnist ${d.split}: ${d.found ?? d.partial ?? 'not found locally (will download on first use)'}`);
      console.log(`zoo: ${info.zoo.map((m) => m.name).join(', ')}`);
      console.log(`shipped checkpoints (models/): ${checkpoints.join(', ') || 'none'}`);
    });
}
