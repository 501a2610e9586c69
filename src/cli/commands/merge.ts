import { Command } from 'commander';
import { mergeResults } from '../../report/merge.js';

export function mergeCommand(): Command {
  return new Command('merge')
    .description('join the result directories of a sharded sweep (ctta run --shard i/n) into one')
    .argument('<dirs...>', 'result directories (the --out of each shard)')
    .requiredOption('--out <dir>', 'directory to copy the finished runs into (created if needed; may already hold runs)')
    .option('--json', 'print the merge report as JSON')
    .addHelpText('after', `
Examples:
  ctta merge shard-0/ shard-1/ shard-2/ --out results/
  ctta merge results-*/ --out results/ && ctta table results/

The same run in two directories must be byte-identical; otherwise nothing is written and the
two files are named.`)
    .action(async (dirs: string[], o) => {
      const report = await mergeResults(dirs, o.out);
      if (o.json) {
        console.log(JSON.stringify(report, null, 2));
        return;
      }
      console.log(`merged ${report.runs} runs from ${dirs.length} directories into ${report.out}: ${report.copied} copied, ${report.identical} identical duplicates skipped`);
    });
}
