/** Built-in methods register themselves on import; this file imports them all. */
import './source.js';
import './bn.js';
import './tent.js';
import './lame.js';
import './cotta.js';
import './vida.js';
import './eata.js';
import './sar.js';
import './er.js';
import './analytic/acil.js';
import './analytic/aef-ocl.js';
import './analytic/ds-al.js';
import './onpro/onpro.js';
import './rotta.js';
import './nhl.js';
import './uer.js';
import './ear.js';
import './tame.js';
import { sealBuiltInMethods } from './registry.js';

// Plug-ins may add methods, not replace these.
sealBuiltInMethods();

export { createMethod, datasetDefaults, getMethodDefinition, listMethods, registerMethod, resolveMethodOptions } from './registry.js';
export { loadPlugin } from './plugin.js';
export type { AdaptationMethod, Diagnostics, MethodContext, MethodDefinition } from './types.js';
