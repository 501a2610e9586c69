import { Command, InvalidArgumentError } from 'commander';
import { ONLINE_CURVES, PLOT_KINDS, plotRuns, renderPng, renderSvg } from '../../report/plot.js';
import { readResults } from '../../report/results.js';
import { checkOutputFile } from '../../util/output-dir.js';
import { choiceOption, intOption } from '../parse.js';
import { listOption, requireRuns, writeOutput } from './table.js';

const OUTPUTS = ['.svg', '.png', '.json'];

export function plotCommand(): Command {
  return new Command('plot')
    .description("plot result files: online error over the stream, error per domain, the OCL accuracy matrix, or the methods' per-batch diagnostics")
    .argument('<dir>', 'results directory (the --out of ctta run)')
    .requiredOption('--out <file>', 'FILE.svg or FILE.png (FILE.json: the Vega-Lite spec, to restyle it)', outOption)
    .option('--kind <kind>', 'online | domains | matrix (OCL accuracy matrix heatmap, one panel per method, tasks not yet trained on greyed) | diagnostics (one panel per diagnostic, value per batch, mean over seeds)', choiceOption('--kind', PLOT_KINDS), 'online')
    .option('--curve <curve>', 'online: windowed (the error over the last --window images: drift shows) | cumulative (over everything so far)', choiceOption('--curve', ONLINE_CURVES), 'windowed')
    .option('--window <images>', 'online, windowed: images per window (default: 1/100 of the stream, at least a batch)', intOption('--window', 1))
    .option('--scenario <name>', 'the scenario to plot (needed when the results hold several)')
    .option('--methods <list>', 'only these methods, in this order, comma-separated (default: all, source first)', listOption('--methods'))
    .addHelpText('after', `
Examples:
  ctta plot results/ --out online.svg                    # windowed error, one line per method
  ctta plot results/ --curve cumulative --out cum.svg    # error over everything seen so far
  ctta plot results/ --kind domains --scenario fmnist-c-continual --out domains.png
  ctta plot results/ --kind matrix --scenario fmnist-class-incremental --out matrix.svg
  ctta plot results/ --kind diagnostics --scenario fmnist-c-continual --methods eata,sar --out diag.svg`)
    .action(async (dir: string, o) => {
      // A bad --out (a file in the path, a folder, /proc, read-only) fails before any work.
      checkOutputFile(o.out);
      const runs = await readResults(dir);
      requireRuns(runs, dir);
      const spec = plotRuns(runs, { kind: o.kind, scenario: o.scenario, methods: o.methods, curve: o.curve, window: o.window });
      const out: string = o.out;
      if (out.toLowerCase().endsWith('.json')) {
        await writeOutput(out, JSON.stringify(spec, null, 2) + '\n');
      } else {
        const svg = await renderSvg(spec);
        await writeOutput(out, out.toLowerCase().endsWith('.png') ? await renderPng(svg) : svg);
      }
      console.log(`wrote ${out}: ${o.kind} plot`);
    });
}

function outOption(value: string): string {
  if (!OUTPUTS.some((ext) => value.toLowerCase().endsWith(ext))) {
    throw new InvalidArgumentError(`--out must end in .svg or .png (or .json for the spec), got "${value}"`);
  }
  return value;
}
