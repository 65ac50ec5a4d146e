/*
 * Run a Cronium Node.js script with the runtime helpers available.
 *
 * Usage: node cronium_run.js SCRIPT [ARGS...]
 *
 * Installs the synchronous helper API as the global `cronium`, then runs
 * SCRIPT as the main module, as `node SCRIPT ARGS...` would: process.argv[1],
 * require.main, __filename and stack traces all name the script.
 *
 * Older Cronium scripts use `await` at the top level of a CommonJS file
 * (`const v = await cronium.getVariable('k')`), which plain `node` rejects.
 * Such a script is run inside an async function instead, with its line
 * numbers unchanged.
 */
'use strict';

const fs = require('fs');
const Module = require('module');
const path = require('path');
const vm = require('vm');

global.cronium = require('./cronium.js').sync;

function usesTopLevelAwait(file, source) {
  if (!/\bawait\b/.test(source) || /\.mjs$/.test(file)) return false;
  const body = source.replace(/^#!.*/, '');
  try {
    new vm.Script(Module.wrap(body), { filename: file });
    return false;
  } catch (error) {
    if (!(error instanceof SyntaxError)) return false;
  }
  // The error depends on where the first `await` stands (`(await x)` is not
  // reported as a misplaced await): the script uses top-level await when it
  // compiles as the body of an async function.
  try {
    new vm.Script('(async () => {' + body + '\n})();', { filename: file });
    return true;
  } catch (error) {
    return false;
  }
}

function runWithTopLevelAwait(file, source) {
  const main = new Module(file, null);
  main.id = '.';
  main.filename = file;
  main.paths = Module._nodeModulePaths(path.dirname(file));
  process.mainModule = main; // what require.main reports
  Module._cache[file] = main;
  // On one line with the script's first line, so line numbers do not move.
  const wrapped = 'return (async () => {' + source.replace(/^#!.*/, '') + '\n})();';
  const completion = main._compile(wrapped, file);
  main.loaded = true;
  // A rejection is left unhandled on purpose: Node prints it and exits 1,
  // as for an uncaught exception in a plain script.
  return completion;
}

function main() {
  if (process.argv.length < 3) {
    process.stderr.write('usage: node cronium_run.js SCRIPT [ARGS...]\n');
    process.exit(2);
  }
  const file = path.resolve(process.argv[2]);
  process.argv.splice(1, 2, file);

  let source = null;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (error) {
    source = null; // let Node report the missing file the usual way
  }
  if (source !== null && usesTopLevelAwait(file, source)) {
    runWithTopLevelAwait(file, source);
  } else {
    Module.runMain();
  }
}

main();
