/** Built-in methods register themselves on import; this file imports them all. */
import './source.js';
import './bn.js';
import './tent.js';
import './lame.js';
import './cotta.js';
import './vida.js';
import './eata.js';
import './sar.js';

export { createMethod, getMethodDefinition, listMethods, loadPlugin, registerMethod } from './registry.js';
export type { AdaptationMethod, MethodContext, MethodDefinition } from './types.js';
