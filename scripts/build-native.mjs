#!/usr/bin/env node
// Builds the native runtime (native/ -> native/build/Release/grpst_native.node) with cmake-js.
// Runs on `npm install` and `npm run build`. Node-API headers come from npm packages
// (node-api-headers, node-addon-api): nothing is downloaded. Skips the build when the binary is
// newer than every source file, unless --force. Missing tools are named with the command that
// installs them, and the script exits non-zero.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const buildDir = join(nativeDir, 'build');
const output = join(buildDir, 'Release', 'grpst_native.node');
const force = process.argv.includes('--force');
const dryRun = process.argv.includes('--dry-run');
const cmakeArgs = process.argv.filter((a) => a.startsWith('--CD'));
// GRPST_CUDA=ON|OFF|AUTO in the environment (`GRPST_CUDA=OFF npm install`) sets the CMake option;
// a --CDGRPST_CUDA=... argument wins. The mode of the last build is kept beside it, so asking
// for another one rebuilds even when no source changed.
const cudaStamp = join(buildDir, 'grpst-cuda-mode.txt');
const cudaMode = process.env.GRPST_CUDA?.trim().toUpperCase() || undefined;

function fail(message, fix) {
  console.error(`grpst: cannot build the native runtime: ${message}`);
  if (fix) console.error(`  fix: ${fix}`);
  process.exit(1);
}

function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'build') continue;
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

if (cudaMode !== undefined) {
  if (!['ON', 'OFF', 'AUTO'].includes(cudaMode)) fail(`GRPST_CUDA=${process.env.GRPST_CUDA} is not ON, OFF or AUTO`, 'set GRPST_CUDA=ON (require the CUDA backend), OFF (CPU only) or AUTO (where nvcc and cuBLAS are found), or unset it');
  if (!cmakeArgs.some((a) => a.startsWith('--CDGRPST_CUDA='))) cmakeArgs.push(`--CDGRPST_CUDA=${cudaMode}`);
}
const stampedMode = existsSync(cudaStamp) ? readFileSync(cudaStamp, 'utf8').trim() : undefined;
const modeChanged = cudaMode !== undefined && cudaMode !== stampedMode;

if (!dryRun && !force && !modeChanged && existsSync(output) && statSync(output).mtimeMs > newestSource(nativeDir)) {
  console.log(`grpst: native runtime is up to date (${output})`);
  process.exit(0);
}

const missing = [];
if (!has('cmake')) missing.push(['cmake (3.18 or newer)', 'cmake']);
const cxx = process.env.CXX || 'c++';
if (!has(cxx)) missing.push([`a C++17 compiler (${cxx})`, 'g++']);
if (!has('make') && !has('ninja')) missing.push(['make or ninja', 'make']);
if (missing.length) {
  fail(
    `missing ${missing.map((m) => m[0]).join(', ')}`,
    `sudo apt-get install -y ${[...new Set(missing.map((m) => m[1]))].join(' ')}  (Debian/Ubuntu; other systems: install the same tools)`,
  );
}

// Resolved like any dependency, so a hoisted install (grpst inside another project) works too.
const requireHere = createRequire(join(root, 'package.json'));
function packageDir(name) {
  try {
    return dirname(requireHere.resolve(`${name}/package.json`));
  } catch {
    return undefined;
  }
}
const cmakeJsDir = packageDir('cmake-js');
if (!cmakeJsDir) fail('the npm package cmake-js is missing', 'run npm install in the project folder first');
const cmakeJs = join(cmakeJsDir, 'bin', 'cmake-js');
const requireCmakeJs = createRequire(join(cmakeJsDir, 'package.json'));
if (!packageDir('node-addon-api')) {
  fail('the npm package node-addon-api is missing', 'run npm install in the project folder (it provides the C++ Node-API headers)');
}
try {
  requireCmakeJs.resolve('node-api-headers/package.json');
} catch {
  fail('the npm package node-api-headers is missing', 'run npm install in the project folder (it provides the Node-API C headers)');
}

const parallel = String(Math.max(1, cpus().length));
const args = ['build', '-d', nativeDir, '-O', buildDir, '-B', 'Release', '-p', parallel, '-m', ...cmakeArgs];
if (dryRun) {
  console.log(`cmake-js ${args.join(' ')}`);
  process.exit(0);
}
console.log(`grpst: building the native runtime (cmake-js ${args.join(' ')})`);
const r = spawnSync(process.execPath, [cmakeJs, ...args], { stdio: 'inherit', cwd: root });
if (r.status !== 0 || !existsSync(output)) {
  fail(
    `cmake-js exited with ${r.status ?? r.signal}`,
    'read the compiler output above; `npm run build:native` retries from a clean configuration',
  );
}
if (cudaMode !== undefined) writeFileSync(cudaStamp, `${cudaMode}\n`);
console.log(`grpst: built ${output}`);
