import { Command } from 'commander';
import { setBackend } from '../../backend/index.js';
import { loadModel } from '../../models/checkpoint.js';
import { loadDataset } from '../../streams/datasets/index.js';
import { evaluateClean, type CleanEvaluation } from '../../training/evaluate.js';
import { intOption } from '../parse.js';
import { progressBar } from '../progress.js';

export function evalCommand(): Command {
  return new Command('eval')
    .description('clean test accuracy of a model: overall, per class, and the confusion matrix')
    .requiredOption('--model <dir>', 'checkpoint directory or tfjs model.json')
    .option('--dataset <name>', 'dataset (default: the one in the model manifest, else fashion-mnist)')
    .option('--data-dir <dir>', 'where the dataset files are')
    .option('--batch-size <n>', 'images per forward pass', intOption('--batch-size', 1), 256)
    .option('--limit <n>', 'evaluate on the first n test images only', intOption('--limit', 1))
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .option('--json', 'print the result as JSON')
    .option('--quiet', 'no progress bar')
    .addHelpText('after', `
Examples:
  ctta eval --model models/fmnist-resnet8
  ctta eval --model models/fmnist-resnet8-base5 --json`)
    .action(async (o) => {
      await setBackend(o.backend);
      const { network, manifest } = await loadModel(o.model);
      const dataset = o.dataset ?? manifest?.dataset ?? 'fashion-mnist';
      const test = await loadDataset(dataset, 'test', { dataDir: o.dataDir });
      const bar = progressBar(1, 'eval [{bar}] {percentage}%', { quiet: o.quiet || o.json });
      const result = await evaluateClean(network, test, {
        classes: manifest?.classes,
        batchSize: o.batchSize,
        limit: o.limit,
        onProgress: (done, total) => bar.update(done / total),
      });
      bar.stop();
      network.dispose();
      if (o.json) {
        console.log(JSON.stringify({ model: o.model, dataset, ...result }, null, 2));
        return;
      }
      printEvaluation(result, test.classNames, o.model, dataset);
    });
}

function printEvaluation(r: CleanEvaluation, classNames: string[], model: string, dataset: string): void {
  const names = r.classes.map((c) => classNames[c] ?? String(c));
  console.log(`${model} on ${dataset} test (${r.n} images): clean accuracy ${(r.accuracy * 100).toFixed(2)}%\n`);
  const w = Math.max(...names.map((n) => n.length));
  console.log('per-class accuracy:');
  names.forEach((n, i) => console.log(`  ${String(r.classes[i]).padStart(2)} ${n.padEnd(w)}  ${(r.perClassAccuracy[i]! * 100).toFixed(1).padStart(5)}%`));
  console.log('\nconfusion matrix (rows: true class, columns: predicted):');
  const cell = Math.max(4, ...r.confusion.flat().map((v) => String(v).length + 1));
  console.log(' '.repeat(w + 4) + r.classes.map((c) => String(c).padStart(cell)).join(''));
  r.confusion.forEach((row, i) => console.log(`  ${String(r.classes[i]).padStart(2)}`.padEnd(w + 4) + row.map((v) => String(v).padStart(cell)).join('')));
}
