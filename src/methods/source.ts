/** Source: the frozen pretrained model, BatchNorm on its stored statistics. The baseline. */
import { z } from 'zod';
import { FrozenMethod } from './base/frozen-method.js';
import { registerMethod } from './registry.js';

export const sourceOptions = z.strictObject({});

registerMethod({
  name: 'source',
  description: 'frozen source model, BatchNorm on stored statistics (no adaptation)',
  usesLabels: false,
  options: sourceOptions,
  create: (o) => new FrozenMethod('source', o),
});
