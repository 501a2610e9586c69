import { Command, Option } from 'commander';
import { setBackend } from '../../backend/index.js';
import type * as tf from '@tensorflow/tfjs';
import { CttaError } from '../../errors.js';
import { VIDA_ADAPTER_DEFAULTS, VidaAdapters } from '../../models/adapters/vida.js';
import { loadModel, saveModel } from '../../models/checkpoint.js';
import type { Network } from '../../models/network.js';
import { Rng } from '../../util/rng.js';
import { listModels } from '../../models/registry.js';
import { loadDataset } from '../../streams/datasets/index.js';
import { evaluateClean } from '../../training/evaluate.js';
import { pretrain, PRETRAIN_DEFAULTS } from '../../training/pretrain.js';
import { choiceOption, floatOption, intOption, parseClassList } from '../parse.js';
import { formatSeconds, onInterrupt, progressBar } from '../progress.js';
import { codeVersion } from '../../util/version.js';
import { reproduceCommand } from '../reproduce.js';
import { ensureOutputDir } from '../../util/output-dir.js';

export function pretrainCommand(): Command {
  const d = PRETRAIN_DEFAULTS;
  return new Command('pretrain')
    .description('train a source model on a clean dataset and save it as a checkpoint with a manifest')
    .requiredOption('--out <dir>', 'checkpoint directory to write (model.json, weights.bin, manifest.json)')
    .option('--model <name>', `zoo architecture (${listModels().map((m) => m.name).join(', ')})`, 'resnet8')
    .option('--width <n>', 'channels of the first ResNet stage', intOption('--width', 1))
    .option('--dataset <name>', 'training dataset', 'fashion-mnist')
    .option('--data-dir <dir>', 'where the dataset files are (default: look-up order in the README)')
    .option('--classes <list>', 'train on these class ids only, e.g. 0-4 or 0,2,5', parseClassList)
    .option('--epochs <n>', 'passes over the training set', intOption('--epochs', 1), d.epochs)
    .option('--batch-size <n>', 'images per step', intOption('--batch-size', 1), d.batchSize)
    .addOption(new Option('--optimizer <name>', 'sgd (Nesterov momentum) or adam').default(d.optimizer).argParser(choiceOption('--optimizer', ['sgd', 'adam'] as const)))
    .option('--lr <x>', 'peak learning rate', floatOption('--lr'), d.lr)
    .option('--momentum <x>', 'SGD momentum', floatOption('--momentum'), d.momentum)
    .option('--weight-decay <x>', 'L2 on conv/dense kernels', floatOption('--weight-decay'), d.weightDecay)
    .addOption(new Option('--schedule <name>', 'learning-rate schedule').default(d.schedule).argParser(choiceOption('--schedule', ['cosine', 'constant'] as const)))
    .option('--crop-pad <n>', 'random-crop padding in pixels (0 = no crop)', intOption('--crop-pad'), (d.augment || { cropPad: 0 }).cropPad)
    .option('--no-flip', 'no random horizontal flips')
    .option('--no-augment', 'no augmentation at all')
    .option('--limit <n>', 'train on a seeded subset of n images (quick runs)', intOption('--limit', 1))
    .option('--eval-limit <n>', 'evaluate on the first n test images only', intOption('--eval-limit', 1))
    .option('--seed <n>', 'seed for initialisation, shuffling and augmentation', intOption('--seed'), d.seed)
    .addOption(new Option('--adapters <kind>', 'warm up adapters on a trained model instead of training one (needs --from)').argParser(choiceOption('--adapters', ['vida'] as const)))
    .option('--from <dir>', 'the trained checkpoint whose adapters --adapters warms up (its weights stay frozen)')
    .option('--adapter-layers <sel>', "layers that get adapters: blocks (residual-block convs), all, or a name pattern", VIDA_ADAPTER_DEFAULTS.layers)
    .option('--low-rank <n>', 'middle width of the low-rank adapter branch', intOption('--low-rank', 1), VIDA_ADAPTER_DEFAULTS.lowRank)
    .option('--high-rank-factor <x>', 'middle width of the high-rank branch, in multiples of the input channels', floatOption('--high-rank-factor'), VIDA_ADAPTER_DEFAULTS.highRankFactor)
    .addOption(new Option('--init-std <rule>', 'std of fresh adapter down projections of middle width r').choices(['1/r^2', '1/r']).default(VIDA_ADAPTER_DEFAULTS.initStd))
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .option('--quiet', 'no progress bar')
    .addHelpText(
      'after',
      `
Examples:
  # the shipped 10-class model (see models/fmnist-resnet8/manifest.json for the exact command)
  ctta pretrain --model resnet8 --epochs 8 --out models/fmnist-resnet8
  # a base model on classes 0-4, for class-incremental scenarios
  ctta pretrain --model resnet8 --classes 0-4 --out models/fmnist-resnet8-base5
  # ViDA adapters warmed up on the training set, backbone frozen (the shipped models/fmnist-resnet8-vida)
  ctta pretrain --adapters vida --from models/fmnist-resnet8 --epochs 1 --optimizer adam --lr 1e-3 --out models/fmnist-resnet8-vida
  # a one-minute smoke run
  ctta pretrain --epochs 1 --limit 2000 --out /tmp/smoke`,
    )
    .action(async (o) => {
      // Before an hour of training: the checkpoint folder must be writable.
      ensureOutputDir(o.out);
      const backend = await setBackend(o.backend);
      const started = Date.now();
      const [train, test] = [await loadDataset(o.dataset, 'train', { dataDir: o.dataDir }), await loadDataset(o.dataset, 'test', { dataDir: o.dataDir })];
      if (o.adapters && !o.from) throw new CttaError('--adapters needs --from <checkpoint>: adapters are warmed up on a trained model', { fix: 'e.g. --adapters vida --from models/fmnist-resnet8' });
      if (o.from && !o.adapters) throw new CttaError('--from is only used with --adapters', { fix: 'add --adapters vida, or drop --from to train a model from scratch' });
      const base = o.from ? await loadModel(o.from) : undefined;
      const classesToTrain: number[] | undefined = base?.manifest?.classes ?? o.classes;
      let warmup: { network: Network; variables: tf.Variable[] } | undefined;
      if (base) {
        if (base.network.adapters) throw new CttaError(`${o.from} already has adapters`, { fix: 'warm up from the plain model (e.g. models/fmnist-resnet8)' });
        const adapters = VidaAdapters.create(base.network, { layers: o.adapterLayers, lowRank: o.lowRank, highRankFactor: o.highRankFactor, initStd: o.initStd }, Rng.derive(o.seed, 'vida-init')).attach(base.network);
        warmup = { network: base.network, variables: adapters.variables() };
      }
      const bar = progressBar(o.epochs, 'epoch {epoch}/{total} [{bar}] step {step} loss {loss} | {ips} img/s | ETA {eta_t}', { quiet: o.quiet });
      const options = {
        ...d,
        model: o.model,
        modelOptions: o.width ? { width: o.width } : {},
        classes: classesToTrain,
        epochs: o.epochs,
        batchSize: o.batchSize,
        optimizer: o.optimizer,
        lr: o.lr,
        momentum: o.momentum,
        weightDecay: o.weightDecay,
        schedule: o.schedule,
        augment: o.augment === false ? (false as const) : { cropPad: o.cropPad, flip: o.flip !== false },
        limit: o.limit,
        seed: o.seed,
        warmup,
        onProgress: (p: { epoch: number; step: number; stepsPerEpoch: number; loss: number; imagesPerSecond: number; etaSeconds: number }) =>
          bar.update(p.epoch - 1 + p.step / p.stepsPerEpoch, {
            epoch: p.epoch,
            step: `${p.step}/${p.stepsPerEpoch}`,
            loss: p.loss.toFixed(4),
            ips: p.imagesPerSecond.toFixed(0),
            eta_t: formatSeconds(p.etaSeconds),
          }),
      };
      const stopInterrupt = onInterrupt(`interrupted: nothing was saved (${o.out} is written only at the end); run the command again to train from the start`);
      let trained;
      try {
        trained = await pretrain(train, options);
      } finally {
        bar.stop();
        stopInterrupt();
      }
      const { network, history } = trained;
      const evaluation = await evaluateClean(network, test, { classes: classesToTrain, limit: o.evalLimit });
      const classes = evaluation.classes;
      await saveModel(network, o.out, {
        dataset: o.dataset,
        classNames: classes.map((c) => train.classNames[c]!),
        classes,
        cleanTestAccuracy: evaluation.accuracy,
        command: reproduceCommand(),
        training: { ...options, warmup: base ? { from: o.from, baseWeightsSha256: base.manifest?.weightsSha256 } : undefined, onProgress: undefined, history, evaluatedOn: `${o.dataset} test split (${evaluation.n} images)` },
        createdWith: { ...codeVersion(), backend: backend.name, versions: backend.versions, node: process.version, seconds: (Date.now() - started) / 1000 },
      });
      network.dispose();
      console.log(`saved ${o.out}: clean test accuracy ${(evaluation.accuracy * 100).toFixed(2)}% on ${evaluation.n} images (${formatSeconds((Date.now() - started) / 1000)})`);
    });
}
