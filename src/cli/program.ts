/**
 * The `ctta` command. Commands are thin: parse options, call the library, print. User mistakes
 * (CttaError, bad options) print one line and exit 2; a failed run exits 1.
 */
import * as tf from '@tensorflow/tfjs';
import { Command, CommanderError } from 'commander';
import { CttaError } from '../errors.js';
import { evalCommand } from './commands/eval.js';
import { infoCommand } from './commands/info.js';
import { listCommand } from './commands/list.js';
import { showCommand } from './commands/show.js';
import { pretrainCommand } from './commands/pretrain.js';
import { runCommand } from './commands/run.js';
import { mergeCommand } from './commands/merge.js';
import { plotCommand } from './commands/plot.js';
import { reportCommand } from './commands/report.js';
import { importTorchCommand } from './commands/import-torch.js';
import { tableCommand } from './commands/table.js';
import { packageVersion } from '../util/version.js';

// Quiet tfjs's console advice (e.g. "install tfjs-node"); ctta reports the backend itself.
tf.env().set('PROD', true);

export function buildProgram(): Command {
  const program = new Command('ctta')
    .description('continual test-time adaptation and online continual learning of image classifiers')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `
Examples:
  ctta info                                   # which backend runs, where the data is
  ctta eval --model models/fmnist-resnet8     # clean accuracy of the shipped model
  ctta pretrain --epochs 1 --limit 2000 --out /tmp/smoke
  ctta show fmnist-c-continual --out continual.png   # what the model will see

Docs: README.md. Exit codes: 0 ok, 1 run failed, 2 usage or input error.`);
  for (const cmd of [runCommand(), tableCommand(), plotCommand(), reportCommand(), mergeCommand(), infoCommand(), listCommand(), showCommand(), pretrainCommand(), importTorchCommand(), evalCommand()]) {
    program.addCommand(cmd.showHelpAfterError('(run with --help for usage)'));
  }
  program.exitOverride();
  program.commands.forEach((c) => c.exitOverride());
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed the message (or the help/version) already.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CttaError) {
      process.stderr.write(`ctta: ${err.toLine()}\n`);
      // The one line is for users; the stack of what caused it is for whoever debugs a method.
      const cause = err.cause as Error | undefined;
      if (cause?.stack && (argv.includes('--verbose') || process.env.CTTA_DEBUG === '1')) process.stderr.write(`${cause.stack}\n`);
      return err.exitCode;
    }
    // A bug of ours: one line, and the stack on request for the report.
    const debug = argv.includes('--verbose') || process.env.CTTA_DEBUG === '1';
    const text = debug ? ((err as Error)?.stack ?? String(err)) : `${String((err as Error)?.message ?? err).split('\n')[0]} (run with CTTA_DEBUG=1 for the stack trace)`;
    process.stderr.write(`ctta: internal error (please report it): ${text}\n`);
    return 1;
  }
}
