import { Command } from 'commander';
import { readdirSync } from 'node:fs';
import { listModels } from '../../models/registry.js';
import { CORRUPTIONS, EXTRA_CORRUPTIONS } from '../../streams/corruptions/index.js';
import { orderingNames } from '../../streams/orderings/index.js';
import { loadScenario, scenariosDir } from '../../streams/scenario.js';
import { CttaError } from '../../errors.js';
import { listMethods, loadPlugin } from '../../methods/index.js';
import type { DatasetDefaultsKey } from '../../streams/datasets/types.js';
import { collect } from '../parse.js';

const DATASET_ROWS: DatasetDefaultsKey[] = ['cifar10', 'cifar100', 'imagenet', 'fashion-mnist'];

const WHAT = ['methods', 'corruptions', 'scenarios', 'models', 'orderings'] as const;

export function listCommand(): Command {
  return new Command('list')
    .description(`list what ctta knows: ${WHAT.join(', ')}`)
    .argument('<what>', WHAT.join(' | '))
    .option('--plugin <file>', 'load a plug-in first (its methods and their options are listed), repeatable', collect, [])
    .addHelpText('after', `
Examples:
  ctta list methods
  ctta list methods --plugin examples/pseudo-label.js
  ctta list corruptions
  ctta list scenarios`)
    .action(async (what: string, o: { plugin: string[] }) => {
      for (const p of o.plugin) await loadPlugin(p);
      switch (what) {
        case 'methods':
          for (const m of listMethods()) {
            const defaults = m.options.parse({});
            const opts = Object.keys(m.options.shape ?? {}).map((k) => `${k}=${defaults[k] !== undefined ? JSON.stringify(defaults[k]) : '(unset)'}`);
            console.log(`${m.name.padEnd(12)} ${m.usesLabels ? 'labels ' : 'no labels'}  ${m.description}${opts.length ? `\n${' '.repeat(24)}options: ${opts.join(', ')}` : ''}`);
            // The values the papers set per dataset; an option the user leaves unset takes the
            // scenario dataset's row (a missing row: CIFAR-10's).
            for (const row of DATASET_ROWS) {
              const values = m.defaults?.[row];
              if (values) console.log(`${' '.repeat(24)}${row}: ${Object.entries(values).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}`);
            }
          }
          return;
        case 'corruptions':
          console.log('ImageNet-C corruptions (severities 1-5):');
          for (const c of CORRUPTIONS) console.log(`  ${c}`);
          console.log('validation corruptions (severities 1-5):');
          for (const c of EXTRA_CORRUPTIONS) console.log(`  ${c}`);
          console.log('  none (the clean domain, severity 0)');
          return;
        case 'scenarios': {
          const files = readdirSync(scenariosDir()).filter((f) => f.endsWith('.json')).sort();
          for (const f of files) {
            const s = loadScenario(`${scenariosDir()}/${f}`);
            console.log(`${s.name.padEnd(28)} ${s.dataset.padEnd(14)} ${s.ordering.name.padEnd(18)} ${s.description}`);
          }
          return;
        }
        case 'models':
          const width = Math.max(...listModels().map((m) => m.name.length));
          for (const m of listModels()) console.log(`${m.name.padEnd(width)}  ${m.description}`);
          return;
        case 'orderings':
          for (const o of orderingNames()) console.log(o);
          return;
        default:
          throw new CttaError(`cannot list "${what}"`, { fix: `use one of: ${WHAT.join(', ')}` });
      }
    });
}
