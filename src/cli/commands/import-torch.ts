import { Command, InvalidArgumentError } from 'commander';
import { createHash } from 'node:crypto';
import { setBackend } from '../../backend/index.js';
import { CttaError } from '../../errors.js';
import { saveModel } from '../../models/checkpoint.js';
import { readSafetensorsFile } from '../../models/import/safetensors.js';
import { importStateDict, TORCH_ARCHITECTURES } from '../../models/import/torch.js';
import { CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from '../../streams/datasets/readers/index.js';
import { FASHION_MNIST_CLASSES } from '../../streams/datasets/index.js';
import { checkOutputFile } from '../../util/output-dir.js';
import { codeVersion } from '../../util/version.js';
import { choiceOption } from '../parse.js';
import { reproduceCommand } from '../reproduce.js';

/** The class names a scenario of each dataset checks a model's head against. */
const CLASS_NAMES: Record<string, readonly string[]> = { cifar10: CIFAR10_CLASSES, cifar100: CIFAR100_FINE_CLASSES, 'fashion-mnist': FASHION_MNIST_CLASSES };

function shapeOption(value: string): [number, number, number] {
  const parts = value.split(/[x,]/).map(Number);
  if (parts.length !== 3 || parts.some((p) => !Number.isInteger(p) || p < 1)) throw new InvalidArgumentError(`--input must be HxWxC, e.g. 32x32x3, got "${value}"`);
  return parts as [number, number, number];
}

export function importTorchCommand(): Command {
  return new Command('import-torch')
    .description('convert a PyTorch state_dict saved as safetensors into a ctta checkpoint (weights, BN running statistics, manifest)')
    .argument('<file>', 'the state_dict as .safetensors')
    .requiredOption('--arch <name>', `architecture: ${TORCH_ARCHITECTURES.map((a) => `${a.name} (${a.description})`).join('; ')}`, choiceOption('--arch', TORCH_ARCHITECTURES.map((a) => a.name)))
    .requiredOption('--out <dir>', 'checkpoint folder to write (e.g. models/cifar10-wrn28_10)')
    .option('--dataset <name>', `the classes the head predicts, in order: ${Object.keys(CLASS_NAMES).join(', ')}`, choiceOption('--dataset', Object.keys(CLASS_NAMES)), 'cifar10')
    .option('--input <HxWxC>', 'image size the network takes', shapeOption, [32, 32, 3] as [number, number, number])
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .addHelpText('after', `
Examples:
  ctta import-torch Standard.safetensors --arch wrn28_10 --out models/cifar10-wrn28_10
  ctta import-torch wrn40_2.safetensors --arch wrn --dataset cifar100 --out models/cifar100-wrn40_2

A .pt/.pth file is a pickle: save its state_dict as safetensors once, in Python:
  from safetensors.torch import save_file; save_file(model.state_dict(), "model.safetensors")
Then point a scenario's "model" at the folder (README, "Models and checkpoints").`)
    .action(async (file: string, o) => {
      checkOutputFile(`${o.out}/manifest.json`);
      await setBackend(o.backend);
      const { bytes, tensors } = readSafetensorsFile(file);
      const network = importStateDict(tensors, o.arch, o.input);
      try {
        const classNames = CLASS_NAMES[o.dataset]!;
        if (network.numClasses !== classNames.length) {
          throw new CttaError(`the head predicts ${network.numClasses} classes, ${o.dataset} has ${classNames.length}`, { fix: `choose the --dataset the model was trained on (${Object.keys(CLASS_NAMES).join(', ')})` });
        }
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        await saveModel(network, o.out, {
          dataset: o.dataset,
          classNames: [...classNames],
          classes: classNames.map((_, i) => i),
          command: reproduceCommand(),
          createdWith: { ...codeVersion(), importedFrom: { file, sha256, arch: o.arch, tensors: tensors.size } },
        });
        console.log(`saved ${o.out}: ${network.spec.architecture} ${JSON.stringify(network.spec.options)} from ${tensors.size} tensors of ${file}`);
      } finally {
        network.dispose();
      }
    });
}
