// The runtime's public face for the rest of grpst.
export { loadEngine, nativeOptions } from './load.js';
export { Engine } from './engine.js';
export { LoadCancelled } from './types.js';
export { loadAddon, probeAddon, addonPath } from './addon.js';
export type * from './types.js';
