/**
 * ctta's own tfjs layers. Importing this registers them with tfjs's serializer, which a
 * checkpoint's model.json needs before it can be loaded (checkpoint.ts imports it).
 */
export { ChannelZeroPad } from './channel-zero-pad.js';
export { GroupNormalization } from './group-norm.js';
export { InputNormalization } from './input-normalization.js';
