/**
 * class_incremental: the online continual learning protocol of Split-MNIST / Split-CIFAR
 * (e.g. 5 tasks x 2 classes). The classes, in `classOrder` or a seeded permutation, are cut into
 * tasks; task t streams every training image of its classes (or `samplesPerTask` of them) in a
 * seeded random order, then task t + 1 begins. No image is shown twice.
 *
 * Given an evaluation split, each task also carries the indices of that split's images of the
 * task's classes (`tasks[t].evalIndices`), which is what the accuracy matrix / forgetting
 * metrics evaluate after each task.
 */
import { z } from 'zod';

import { CttaError } from '../../errors.js';
import {
  assemble,
  checkClassOrder,
  concat,
  indicesByClass,
  positiveInt,
  prepare,
  range,
  resolveDomains,
  resolveLabels,
  sortedSample,
  type Domain,
  type DomainInput,
  type LabelSource,
  type Ordering,
  type Segment,
  type TaskInfo,
} from './common.js';

export const classIncrementalParams = z
  .object({
    /** Number of equal-sized tasks (default 5); the class count must divide evenly. */
    nTasks: positiveInt.optional(),
    /** Explicit task sizes in classes, e.g. [5, 1, 1, 1, 1, 1]; replaces nTasks. */
    classesPerTask: z.array(positiveInt).min(1).optional(),
    /** Classes in task order (may be a subset of the classes). Default: all, seeded permutation. */
    classOrder: z.array(z.number().int().min(0)).min(1).optional(),
    /** Without classOrder: permute the classes with the seed (default true) or keep 0, 1, 2, ... */
    shuffleClasses: z.boolean().default(true),
    /** At most this many training images per task (default: all of them). */
    samplesPerTask: positiveInt.optional(),
    /** At most this many held-out images per task (default: all of them). */
    evalPerTask: positiveInt.optional(),
    /**
     * Long-tailed class counts (e.g. 0.1): the i-th class of the class order keeps a seeded
     * sample of ratio^(i / (C - 1)) of its images (at least one), so the first class keeps all
     * and the last a fraction `ratio` - an exponential profile as in the long-tailed literature.
     * Held-out sets are not thinned: every class is evaluated on all its held-out images.
     */
    imbalanceRatio: z.number().gt(0).max(1).optional(),
  })
  .strict();

export type ClassIncrementalParams = z.input<typeof classIncrementalParams>;

const DEFAULT_TASKS = 5;

/** class_incremental streams a single domain. */
function oneDomain(ordering: string, inputs: readonly DomainInput[] | undefined): Domain[] {
  const domains = resolveDomains(ordering, inputs);
  if (domains.length !== 1) {
    throw new CttaError(`ordering "${ordering}": streams one domain, but domains lists ${domains.length}`, {
      fix: 'give one domain (or none for clean data); use "domain_incremental" for a sequence of domains',
    });
  }
  return domains;
}

/** Split `classes` into consecutive groups of the given sizes. */
function splitClasses(classes: readonly number[], sizes: readonly number[]): number[][] {
  const out: number[][] = [];
  let at = 0;
  for (const size of sizes) {
    out.push(classes.slice(at, at + size));
    at += size;
  }
  return out;
}

export function classIncremental(
  source: LabelSource,
  domainInputs: readonly DomainInput[] | undefined,
  params: ClassIncrementalParams | undefined,
  seed: number,
  evalSource?: LabelSource,
): Ordering {
  const kind = 'class_incremental';
  const { labels, numClasses, domains, p, rng } = prepare(
    kind,
    classIncrementalParams,
    source,
    domainInputs,
    params,
    seed,
    oneDomain,
  );

  let classOrder: number[];
  if (p.classOrder) {
    checkClassOrder(kind, p.classOrder, numClasses, false);
    classOrder = [...p.classOrder];
  } else {
    classOrder = p.shuffleClasses ? Array.from(rng.fork('classes').permutation(numClasses)) : range(numClasses);
  }

  let sizes: number[];
  if (p.classesPerTask) {
    if (p.nTasks !== undefined && p.nTasks !== p.classesPerTask.length) {
      throw new CttaError(
        `ordering "class_incremental": params.nTasks = ${p.nTasks} but params.classesPerTask lists ${p.classesPerTask.length} tasks`,
        { fix: 'give only one of nTasks and classesPerTask' },
      );
    }
    const total = p.classesPerTask.reduce((a, b) => a + b, 0);
    if (total !== classOrder.length) {
      throw new CttaError(
        `ordering "class_incremental": params.classesPerTask sums to ${total} classes, but there are ${classOrder.length}`,
        { fix: `make the task sizes add up to ${classOrder.length}` },
      );
    }
    sizes = [...p.classesPerTask];
  } else {
    const nTasks = p.nTasks ?? DEFAULT_TASKS;
    if (classOrder.length % nTasks !== 0) {
      throw new CttaError(
        `ordering "class_incremental": params.nTasks = ${nTasks} does not divide the ${classOrder.length} classes evenly`,
        { fix: `use an nTasks that divides ${classOrder.length}, or list params.classesPerTask` },
      );
    }
    sizes = new Array<number>(nTasks).fill(classOrder.length / nTasks);
  }
  const groups = splitClasses(classOrder, sizes);

  const byClass = indicesByClass(labels, numClasses);
  if (p.imbalanceRatio !== undefined && classOrder.length > 1) {
    const ratio = p.imbalanceRatio;
    classOrder.forEach((c, i) => {
      const all = byClass[c]!.slice();
      const keep = Math.max(1, Math.round(all.length * ratio ** (i / (classOrder.length - 1))));
      rng.fork('imbalance', c).shuffle(all);
      byClass[c] = all.slice(0, keep).sort();
    });
  }
  let evalByClass: Int32Array[] | undefined;
  if (evalSource !== undefined) {
    const ev = resolveLabels(kind, evalSource, 'evaluation labels');
    if (ev.numClasses > numClasses) {
      throw new CttaError(
        `ordering "class_incremental": the evaluation split holds class ${ev.numClasses - 1}, the stream only ${numClasses} classes`,
      );
    }
    evalByClass = indicesByClass(ev.labels, numClasses);
  }

  const segments: Segment[] = [];
  const tasks: TaskInfo[] = groups.map((classes, t) => {
    const indices = concat(classes.map((c) => byClass[c]!));
    if (indices.length === 0) {
      throw new CttaError(`ordering "class_incremental": task ${t} (classes ${classes.join(', ')}) has no images`);
    }
    rng.fork('task', t).shuffle(indices);
    const keep = p.samplesPerTask === undefined ? indices.length : Math.min(indices.length, p.samplesPerTask);
    segments.push({ indices: indices.slice(0, keep), domain: 0, task: t });

    const task: TaskInfo = { id: t, name: `task-${t}`, classes, domain: 0 };
    if (evalByClass) {
      // The held-out images of the task's classes, ascending.
      const held = concat(classes.map((c) => evalByClass[c]!));
      task.evalIndices = sortedSample(held, p.evalPerTask, rng.fork('eval', t));
    }
    return task;
  });

  return assemble({ kind, seed, params: { ...p, classOrder, classesPerTask: sizes }, numClasses, domains, tasks }, segments);
}
