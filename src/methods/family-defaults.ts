/**
 * Hyper-parameters that the papers set differently for small images (CIFAR-like, and our
 * Fashion-MNIST) and for ImageNet-like data, in one table. A method's option left unset takes
 * the value for the run's family; `ctta list methods` prints this table.
 */
import type { MethodContext } from './types.js';

export type Family = MethodContext['family'];
type Values = Record<string, number | string>;

export const FAMILY_DEFAULTS: Record<string, Record<Family, Values>> = {
  // TENT's code: Adam 1e-3 on CIFAR, SGD 2.5e-4 (momentum 0.9) on ImageNet at batch 64.
  tent: { small: { optimizer: 'adam', lr: 1e-3 }, imagenet: { optimizer: 'sgd', lr: 2.5e-4 } },
  // CoTTA's configs: CIFAR-10 Adam 1e-3, AP 0.92; ImageNet SGD 0.01, AP 0.1.
  cotta: { small: { optimizer: 'adam', lr: 1e-3, ap: 0.92 }, imagenet: { optimizer: 'sgd', lr: 0.01, ap: 0.1 } },
  // ViDA's configs: uncertainty threshold 0.05 (CIFAR) / 0.2 (ImageNet); restore 0.1 (CIFAR code).
  vida: { small: { threshold: 0.05, lr: 1e-4, adapterLr: 1e-5 }, imagenet: { threshold: 0.2, lr: 1e-4, adapterLr: 1e-5 } },
  // EATA: CIFAR-10 values of the paper (also the public benchmark configs) / ImageNet main.py.
  eata: { small: { lr: 0.005, dMargin: 0.4, fisherAlpha: 1 }, imagenet: { lr: 0.00025, dMargin: 0.05, fisherAlpha: 2000 } },
  // SAR: ImageNet main.py rate; no small-image setting is published, so EATA's CIFAR-10 SGD rate
  // (same parameters, same entropy loss). Both scaled by 2 x batch / 64 below batch 32.
  sar: { small: { lr: 0.005 }, imagenet: { lr: 0.00025 } },
};

/** The family value of `method`'s option `key`, used when the user left it unset. */
export function familyDefault<T extends number | string>(method: string, key: string, family: Family): T {
  const v = FAMILY_DEFAULTS[method]?.[family]?.[key];
  if (v === undefined) throw new Error(`no ${family} default for ${method}.${key}`);
  return v as T;
}
