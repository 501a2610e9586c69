import { Command } from 'commander';
import { readdirSync } from 'node:fs';
import { listModels } from '../../models/registry.js';
import { CORRUPTIONS, EXTRA_CORRUPTIONS } from '../../streams/corruptions/index.js';
import { orderingNames } from '../../streams/orderings/index.js';
import { loadScenario, scenariosDir } from '../../streams/scenario.js';
import { CttaError } from '../../errors.js';
import { FAMILY_DEFAULTS } from '../../methods/family-defaults.js';
import { listMethods } from '../../methods/index.js';

const WHAT = ['methods', 'corruptions', 'scenarios', 'models', 'orderings'] as const;

export function listCommand(): Command {
  return new Command('list')
    .description(`list what ctta knows: ${WHAT.join(', ')}`)
    .argument('<what>', WHAT.join(' | '))
    .addHelpText('after', `
Examples:
  ctta list methods
  ctta list corruptions
  ctta list scenarios`)
    .action((what: string) => {
      switch (what) {
        case 'methods':
          for (const m of listMethods()) {
            const defaults = m.options.parse({});
            const family = FAMILY_DEFAULTS[m.name];
            // Options left unset take their value from the scenario family's column.
            const opts = Object.keys(m.options.shape ?? {}).map((k) => `${k}=${defaults[k] !== undefined ? JSON.stringify(defaults[k]) : family?.small[k] !== undefined ? '(family)' : '(unset)'}`);
            console.log(`${m.name.padEnd(12)} ${m.usesLabels ? 'labels ' : 'no labels'}  ${m.description}${opts.length ? `\n${' '.repeat(24)}options: ${opts.join(', ')}` : ''}`);
          }
          console.log('\ndefaults per scenario family (small: CIFAR-like and Fashion-MNIST; imagenet: ImageNet-C):');
          for (const [method, f] of Object.entries(FAMILY_DEFAULTS)) {
            const show = (v: Record<string, unknown>) => Object.entries(v).map(([k, x]) => `${k}=${x}`).join(', ');
            console.log(`  ${method.padEnd(10)} small: ${show(f.small).padEnd(50)} imagenet: ${show(f.imagenet)}`);
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
          for (const m of listModels()) console.log(`${m.name.padEnd(14)} ${m.description}`);
          return;
        case 'orderings':
          for (const o of orderingNames()) console.log(o);
          return;
        default:
          throw new CttaError(`cannot list "${what}"`, { fix: `use one of: ${WHAT.join(', ')}` });
      }
    });
}
