import { Command, InvalidArgumentError } from 'commander';
import { CttaError } from '../../errors.js';
import { readResults, type FinishedRun } from '../../report/results.js';
import { DIAGNOSTIC_METHODS, formatCsv, formatMarkdown, summarize, summarizeDiagnostics, TABLE_LAYOUTS, type Spread } from '../../report/table.js';
import { checkOutputFile, writeFileAtomic } from '../../util/output-dir.js';
import { choiceOption } from '../parse.js';

const FORMATS = ['md', 'csv', 'json'] as const;
const SPREADS: readonly Spread[] = ['auto', 'std', 'ci95', 'none'];

export function tableCommand(): Command {
  return new Command('table')
    .description("the papers' table from result files: error (%) per domain and their mean over seeds, throughput, memory; for online continual learning runs, accuracy-matrix metrics and accuracy per task")
    .argument('<dir>', 'results directory (the --out of ctta run)')
    .option('--scenario <name>', 'only this scenario (default: every scenario, one table each)')
    .option('--methods <list>', 'only these methods, in this order, comma-separated (default: all, source first)', listOption('--methods'))
    .option('--format <fmt>', "md | csv | json (default: by --out's extension, else md)", choiceOption('--format', FORMATS))
    .option('--json', 'the rows as JSON (same as --format json): every cell with its mean, std, 95% half-width and seed count')
    .option('--spread <what>', '"±" shows: auto (std for 2 seeds, 95% t-interval for 3+) | std | ci95 | none', choiceOption('--spread', SPREADS), 'auto')
    .option('--out <file>', 'write the table to this file instead of printing it')
    .option('--layout <layout>', 'auto (ocl for scenarios whose runs have an accuracy matrix, else ctta) | ctta (error per domain) | ocl (avg acc, forgetting, legacy forgetting, avg inc acc, BWT, anytime acc, accuracy per task, state) | summary (what ctta run prints)', choiceOption('--layout', TABLE_LAYOUTS), 'auto')
    .option('--diagnostics', "instead: the methods' per-batch diagnostics (e.g. EATA selected), mean per batch over the run, then over seeds")
    .addHelpText('after', `
Examples:
  ctta table results/                                  # markdown, every scenario
  ctta table results/ --scenario fmnist-c-continual --methods source,bn,tent
  ctta table results/ --format csv --out table.csv
  ctta table results/ --layout summary                 # mean/online error, ECE, img/s, memory
  ctta table results/ --json | jq '.[0].cells'
  ctta table results/ --diagnostics --methods eata,sar # one column per diagnostic, plus batches
  ctta table results/ --scenario fmnist-class-incremental            # OCL layout (chosen automatically)
  ctta table results/ --scenario fmnist-class-incremental --layout ctta # its online error per domain instead`)
    .action(async (dir: string, o) => {
      // A bad --out (a file in the path, a folder, /proc, read-only) fails before any work.
      if (o.out) checkOutputFile(o.out);
      if (o.diagnostics && o.layout !== 'auto') {
        throw new CttaError('--layout chooses the columns of the main table; --diagnostics has its own', { fix: 'drop one of them' });
      }
      const runs = await readResults(dir);
      requireRuns(runs, dir);
      const filter = { scenario: o.scenario, methods: o.methods };
      const rows = o.diagnostics ? summarizeDiagnostics(runs, filter) : summarize(runs, { ...filter, layout: o.layout });
      if (o.diagnostics && rows.length === 0) {
        const scope = [o.scenario && `scenario ${o.scenario}`, o.methods && `methods ${o.methods.join(', ')}`].filter(Boolean).join(', ');
        throw new CttaError(`no diagnostics recorded in ${dir}${scope ? ` (${scope})` : ''}`, {
          fix: `only methods that report per-batch diagnostics record them (${DIAGNOSTIC_METHODS.join(', ')}): run one of those with this ctta`,
        });
      }
      const extension = o.out?.toLowerCase().match(/\.(csv|json)$/)?.[1];
      const format = o.json ? 'json' : (o.format ?? extension ?? 'md');
      const text = format === 'csv' ? formatCsv(rows) : format === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : formatMarkdown(rows, { spread: o.spread });
      if (!o.out) {
        process.stdout.write(text);
        return;
      }
      await writeOutput(o.out, text);
      console.log(`wrote ${o.out}: ${rows.length} rows from ${runs.length} runs`);
    });
}

/** "a,b , c" -> ["a", "b", "c"]. */
export function listOption(name: string) {
  return (value: string): string[] => {
    const items = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) throw new InvalidArgumentError(`${name} must be a comma-separated list, got "${value}"`);
    return items;
  };
}

export function requireRuns(runs: FinishedRun[], dir: string): void {
  if (runs.length === 0) {
    throw new CttaError(`no finished runs in ${dir}`, {
      fix: 'pass the --out directory of `ctta run` (it holds <scenario>/<method>/seed-<k>.jsonl)',
    });
  }
}

/**
 * Writes an output file (--out) atomically, creating its folder: a failure (e.g. a full disk)
 * is a one-line CttaError naming the file and never leaves a half-written file.
 */
export async function writeOutput(file: string, data: string | Buffer): Promise<void> {
  await writeFileAtomic(file, data, '--out');
}
