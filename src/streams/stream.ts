/**
 * A Stream turns (scenario, seed) into batches: the ordering says which sample is shown at each
 * position under which domain; the source supplies its pixels. The next batch is requested
 * before the current one is handed out, so its asynchronous work (sharp's JPEG round trips, file
 * reads, decoding) runs while the model processes the current batch.
 */
import * as tf from '@tensorflow/tfjs';
import { makeOrdering, type Ordering } from './orderings/index.js';
import type { Scenario } from './scenario.js';
import { Rng } from '../util/rng.js';
import { openSource, type DomainImageSource } from './sources.js';

export interface StreamBatch {
  /** Batch number, from 0. */
  index: number;
  /** Stream positions [start, end). */
  start: number;
  end: number;
  /** Dataset sample index of each image. */
  samples: Int32Array;
  /** uint8 pixels, NHWC. */
  images: Uint8Array;
  shape: [number, number, number, number];
  y: Int32Array;
  /** Domain / task index of each image (into `stream.ordering.domains` / `.tasks`). */
  domain: Int32Array;
  task: Int32Array;
  /** The runner resets the method to its source state before this batch (reset_each_shift). */
  reset: boolean;
}

/** Float [0,1] NHWC tensor of uint8 pixels; the caller disposes it. */
export function pixelsTensor(pixels: Uint8Array, shape: [number, number, number, number]): tf.Tensor4D {
  return tf.tidy(() => tf.tensor4d(pixels, shape, 'int32').toFloat().div(255) as tf.Tensor4D);
}

/** Float [0,1] tensor of a batch's images; the caller disposes it. */
export function batchTensor(batch: StreamBatch): tf.Tensor4D {
  return pixelsTensor(batch.images, batch.shape);
}

/**
 * Batch boundaries: every `batchSize` positions, and also wherever the domain or task changes
 * (so each batch is scored under one domain, as the CTTA benchmarks do), except in the `mixed`
 * ordering, whose domains change at every position by design.
 */
export function planBatches(ordering: Ordering, batchSize: number): [number, number][] {
  const out: [number, number][] = [];
  const splitOnDomain = ordering.kind !== 'mixed';
  let start = 0;
  for (let p = 1; p <= ordering.length; p++) {
    const boundary =
      p === ordering.length ||
      p - start === batchSize ||
      ordering.task[p] !== ordering.task[p - 1] ||
      (splitOnDomain && ordering.domain[p] !== ordering.domain[p - 1]) ||
      (ordering.resetAt?.includes(p) ?? false);
    if (boundary) {
      out.push([start, p]);
      start = p;
    }
  }
  return out;
}

export class Stream {
  readonly plan: [number, number][];

  constructor(
    readonly scenario: Scenario,
    readonly seed: number,
    readonly ordering: Ordering,
    readonly source: DomainImageSource,
  ) {
    // `limit` cuts the planned batches, not the ordering: the first batches are those of the whole stream.
    this.plan = planBatches(ordering, scenario.batchSize).slice(0, scenario.limit ?? Infinity);
  }

  get numBatches(): number {
    return this.plan.length;
  }

  /** Loads batch k (not cached: each call reads and corrupts again, deterministically). */
  async batch(k: number): Promise<StreamBatch> {
    const [start, end] = this.plan[k]!;
    const o = this.ordering;
    const samples = o.order.subarray(start, end);
    const domainIds = o.domain.subarray(start, end);
    const { height: h, width: w, channels: c } = this.source;
    const size = h * w * c;
    const images = new Uint8Array(samples.length * size);
    // Read contiguous runs of one domain together (a batch of `mixed` holds several domains).
    for (let i = 0; i < samples.length; ) {
      let j = i + 1;
      while (j < samples.length && domainIds[j] === domainIds[i]) j++;
      const px = await this.source.read(samples.slice(i, j), o.domains[domainIds[i]!]!);
      images.set(px, i * size);
      i = j;
    }
    return {
      index: k,
      start,
      end,
      samples: samples.slice(),
      images,
      shape: [samples.length, h, w, c],
      y: Int32Array.from(samples, (s) => this.source.labels[s]!),
      domain: domainIds.slice(),
      task: o.task.slice(start, end),
      reset: o.resetAt?.includes(start) ?? false,
    };
  }

  /** All batches in order, from `from` on, with one batch of look-ahead. */
  async *batches(from = 0): AsyncGenerator<StreamBatch> {
    let next = from < this.plan.length ? this.batch(from) : undefined;
    for (let k = from; k < this.plan.length; k++) {
      const current = await next!;
      next = k + 1 < this.plan.length ? this.batch(k + 1) : undefined;
      // Keep a rejected look-ahead from surfacing as an unhandled rejection if the consumer stops.
      next?.catch(() => undefined);
      yield current;
    }
  }
}

export interface OpenStreamOptions {
  dataDir?: string;
}

/** Builds the stream of one scenario and seed. */
export async function openStream(scenario: Scenario, seed: number, options: OpenStreamOptions = {}): Promise<Stream> {
  // The ordering needs the labels; precorrupted sources learn them from the first domain's files.
  const provisional = scenario.domains.map((d) => ({ corruption: d.corruption, severity: d.severity ?? 5, name: d.name ?? '' }));
  const source = await openSource(scenario, provisional, { dataDir: options.dataDir, seed });
  const labels = { labels: source.labels, classNames: source.classNames };
  if (!scenario.heldOut) {
    return new Stream(scenario, seed, makeOrdering(scenario.ordering.name, labels, scenario.domains, scenario.ordering.params, seed), source);
  }
  // Held-out evaluation sets: a seeded split of the samples into stream and evaluation parts.
  // The ordering works on each part's own labels; its indices are mapped back to the dataset's.
  const perm = Rng.derive(seed, 'held-out').permutation(source.labels.length);
  const cut = Math.round(perm.length * (1 - scenario.heldOut.fraction));
  const streamIdx = perm.subarray(0, cut).sort();
  const evalIdx = perm.subarray(cut).sort();
  const part = (idx: Int32Array) => ({ labels: Int32Array.from(idx, (i) => source.labels[i]!), classNames: source.classNames });
  const ordering = makeOrdering(scenario.ordering.name, part(streamIdx), scenario.domains, scenario.ordering.params, seed, part(evalIdx));
  ordering.order = Int32Array.from(ordering.order, (i) => streamIdx[i]!);
  for (const task of ordering.tasks) if (task.evalIndices) task.evalIndices = Int32Array.from(task.evalIndices, (i) => evalIdx[i]!);
  return new Stream(scenario, seed, ordering, source);
}
