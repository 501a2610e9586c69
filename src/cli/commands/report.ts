import { Command } from 'commander';
import { buildHtmlReport, selectRuns } from '../../report/html.js';
import { readResults } from '../../report/results.js';
import { checkOutputFile, requireExtension } from '../../util/output-dir.js';
import { packageVersion } from '../../util/version.js';
import { listOption, requireRuns, writeOutput } from './table.js';

export function reportCommand(): Command {
  return new Command('report')
    .description('one self-contained HTML file (no network needed): tables, interactive charts, accuracy matrices, diagnostics and every run\'s metadata')
    .argument('<dir>', 'results directory (the --out of ctta run)')
    .requiredOption('--out <file.html>', 'HTML file to write')
    .option('--methods <list>', 'only these methods, in this order, comma-separated', listOption('--methods'))
    .addHelpText('after', `
Examples:
  ctta report results --out report.html
  ctta report runs --methods source,bn,tent --out tent.html`)
    .action(async (dir: string, o) => {
      requireExtension(o.out, ['.html', '.htm'], 'the report is HTML');
      checkOutputFile(o.out);
      const runs = await readResults(dir);
      requireRuns(runs, dir);
      const html = await buildHtmlReport(runs, { source: dir, methods: o.methods, ctta: packageVersion() });
      await writeOutput(o.out, html);
      console.log(`wrote ${o.out}: ${selectRuns(runs, o.methods).length} runs, ${(Buffer.byteLength(html) / 1024).toFixed(0)} KiB`);
    });
}
