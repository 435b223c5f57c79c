// `node --import` this file to record the modules a process loads (import-log-hooks.mjs).
import { register } from 'node:module';

register('./import-log-hooks.mjs', import.meta.url);
