import { Command, InvalidArgumentError } from 'commander';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { setBackend } from '../../backend/index.js';
import { CttaError } from '../../errors.js';
import { saveModel } from '../../models/checkpoint.js';
import { readSafetensorsFile } from '../../models/import/safetensors.js';
import { importStateDict, INPUT_NORMS, type InputNorm, TORCH_ARCHITECTURES, torchArchitecture } from '../../models/import/torch.js';
import { CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from '../../streams/datasets/readers/index.js';
import { FASHION_MNIST_CLASSES } from '../../streams/datasets/index.js';
import { subfolders } from '../../streams/datasets/readers/image-folder.js';
import { checkOutputFile } from '../../util/output-dir.js';
import { codeVersion } from '../../util/version.js';
import { choiceOption } from '../parse.js';
import { reproduceCommand } from '../reproduce.js';

/**
 * The class names a scenario of each dataset checks a model's head against. ImageNet's 1000
 * wnids are not shipped: they come from --class-names (the class folders of your copy).
 */
const CLASS_NAMES: Record<string, readonly string[] | undefined> = { cifar10: CIFAR10_CLASSES, cifar100: CIFAR100_FINE_CLASSES, 'fashion-mnist': FASHION_MNIST_CLASSES, imagenet: undefined };

/**
 * Class names from a folder (its sub-folders, sorted: torchvision's ImageFolder order, and the
 * order ctta's ImageNet-C reader labels by) or a text file (one name per line).
 */
async function readClassNames(path: string): Promise<string[]> {
  if (!existsSync(path)) throw new CttaError(`--class-names ${path}: no such file or folder`, { fix: 'give a folder of class sub-folders (e.g. ImageNet-C/gaussian_noise/5) or a file with one class name per line' });
  const names = statSync(path).isDirectory()
    ? await subfolders(path)
    : readFileSync(path, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (names.length === 0) throw new CttaError(`--class-names ${path}: no class names in it`, { fix: 'give a folder of class sub-folders or a file with one class name per line' });
  if (new Set(names).size !== names.length) throw new CttaError(`--class-names ${path}: a class name appears twice`, { fix: 'one line per class, each once' });
  return names;
}

/** --input-norm: a name of INPUT_NORMS, or "m1,m2,m3/s1,s2,s3". */
function inputNormOption(value: string): InputNorm | 'none' {
  if (Object.hasOwn(INPUT_NORMS, value)) return INPUT_NORMS[value] ?? 'none';
  const [mean, std, ...rest] = value.split('/').map((part) => part.split(',').map(Number));
  if (!mean || !std || rest.length > 0 || mean.length !== std.length || [...mean, ...std].some((v) => !Number.isFinite(v)) || std.some((v) => v <= 0)) {
    throw new InvalidArgumentError(`--input-norm must be ${Object.keys(INPUT_NORMS).join(', ')} or MEANS/STDS like 0.5,0.5,0.5/0.25,0.25,0.25, got "${value}"`);
  }
  return { mean, std };
}

function groupsOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--groups must be a positive integer, got "${value}"`);
  return n;
}

function shapeOption(value: string): [number, number, number] {
  const parts = value.split(/[x,]/).map(Number);
  if (parts.length !== 3 || parts.some((p) => !Number.isInteger(p) || p < 1)) throw new InvalidArgumentError(`--input must be HxWxC, e.g. 32x32x3, got "${value}"`);
  return parts as [number, number, number];
}

export function importTorchCommand(): Command {
  return new Command('import-torch')
    .description('convert a PyTorch state_dict saved as safetensors into a ctta checkpoint (weights, BN running statistics, manifest)')
    .argument('<file>', 'the state_dict as .safetensors')
    .requiredOption('--arch <name>', `the network the state_dict is from: ${TORCH_ARCHITECTURES.map((a) => a.name).join(', ')} (below)`, choiceOption('--arch', TORCH_ARCHITECTURES.map((a) => a.name)))
    .requiredOption('--out <dir>', 'checkpoint folder to write (e.g. models/cifar10-wrn28_10)')
    .option('--dataset <name>', `the classes the head predicts, in order: ${Object.keys(CLASS_NAMES).join(', ')} (imagenet needs --class-names)`, choiceOption('--dataset', Object.keys(CLASS_NAMES)), 'cifar10')
    .option('--class-names <path>', "the head's class names in order: a folder of class sub-folders (sorted, e.g. ImageNet-C/gaussian_noise/5) or a text file, one per line")
    .option('--input <HxWxC>', 'image size the network takes (default: 224x224x3 for resnet50, else 32x32x3)', shapeOption)
    .option('--input-norm <norm>', `what the network expects its [0, 1] images normalised with, kept in the model: ${Object.keys(INPUT_NORMS).join(', ')} or MEANS/STDS (default: imagenet for resnet50, ttt for resnet26/ttt_resnet, none for the WideResNets)`, inputNormOption)
    .option('--groups <n>', "GroupNorm's groups for a checkpoint without BatchNorm statistics (TTT's GN models: 8)", groupsOption, 8)
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .addHelpText('after', `
Architectures:
${TORCH_ARCHITECTURES.map((a) => `  ${a.name.padEnd(11)} ${a.description}`).join('\n')}

Examples:
  ctta import-torch Standard.safetensors --arch wrn28_10 --out models/cifar10-wrn28_10
  ctta import-torch wrn40_2.safetensors --arch wrn --dataset cifar100 --out models/cifar100-wrn40_2
  ctta import-torch ttt_resnet26_bn.safetensors --arch resnet26 --out models/cifar10-resnet26
  ctta import-torch resnet50.safetensors --arch resnet50 --dataset imagenet \\
    --class-names ImageNet-C/gaussian_noise/5 --out models/imagenet-resnet50

A .pt/.pth file is a pickle: save its state_dict as safetensors once, in Python:
  from safetensors.torch import save_file; save_file(model.state_dict(), "model.safetensors")
Then point a scenario's "model" at the folder (README, "Models and checkpoints").`)
    .action(async (file: string, o) => {
      checkOutputFile(`${o.out}/manifest.json`);
      await setBackend(o.backend);
      const classNames = o.classNames !== undefined ? await readClassNames(o.classNames) : CLASS_NAMES[o.dataset];
      if (classNames === undefined) {
        throw new CttaError(`--dataset ${o.dataset}: its class names are not shipped with ctta`, { fix: 'pass --class-names DIR, a folder of its class sub-folders (e.g. ImageNet-C/gaussian_noise/5), or a file with one name per line' });
      }
      const arch = torchArchitecture(o.arch);
      const { bytes, tensors } = readSafetensorsFile(file);
      const network = importStateDict(tensors, o.arch, o.input ?? arch.defaultInput, { inputNorm: o.inputNorm ?? 'default', groups: o.groups });
      try {
        if (network.numClasses !== classNames.length) {
          const from = o.classNames !== undefined ? `--class-names ${o.classNames} names` : `${o.dataset} has`;
          throw new CttaError(`the head predicts ${network.numClasses} classes, ${from} ${classNames.length}`, { fix: `choose the --dataset the model was trained on (${Object.keys(CLASS_NAMES).join(', ')}) or the matching --class-names` });
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
