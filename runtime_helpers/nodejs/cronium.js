/*
 * Cronium runtime helpers for Node.js scripts (CommonJS, no dependencies).
 *
 * Two faces over the same run-folder files (see runtime_helpers/PROTOCOL.md):
 *
 * - the global `cronium` that the bootstrap (cronium_run.js) installs is the
 *   documented, synchronous API: `cronium.getVariable(key)` returns the value;
 * - `require('cronium')` (the host puts this folder on NODE_PATH) returns what
 *   older Cronium generations' SDK returned: the same names, each returning a
 *   Promise (`await cronium.getVariable(key)`, `.then(...)`), plus a
 *   `cronium` instance and a constructible `Cronium`. Its `.sync` property is
 *   the synchronous API.
 *
 * Written for Node.js 12+ (no optional chaining) so remote servers with an
 * older Node still run it.
 */
'use strict';

const fs = require('fs');
const path = require('path');

function runDir() {
  // CRONIUM_RUN_DIR, else the run folder this file was copied into
  // (<run dir>/helpers/nodejs/cronium.js).
  return process.env.CRONIUM_RUN_DIR || path.resolve(__dirname, '..', '..');
}

function filePath(name) {
  return path.join(runDir(), name);
}

function readJson(name, fallback) {
  let text;
  try {
    text = fs.readFileSync(filePath(name), 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return fallback;
    throw error;
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (!text.trim()) return fallback;
  return JSON.parse(text);
}

function toJson(value, what) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new TypeError('cronium: ' + what + ' is not JSON-serializable: ' + error.message);
  }
  // JSON.stringify(undefined) (or a function) gives undefined: store null.
  return text === undefined ? 'null' : text;
}

function writeAtomic(name, text) {
  const target = filePath(name);
  const temporary = target + '.tmp-' + process.pid;
  fs.writeFileSync(temporary, text);
  fs.renameSync(temporary, target);
}

function journal(line) {
  // One appendFileSync per call: the change is on disk before the call returns.
  fs.appendFileSync(filePath('variables.log'), line + '\n');
}

function checkKey(key) {
  if (typeof key !== 'string') {
    throw new TypeError('cronium: a variable key must be a string, not ' + typeof key);
  }
  if (key === '') throw new Error('cronium: a variable key must not be empty');
  return key;
}

function variables() {
  const data = readJson('variables.json', {});
  return data !== null && typeof data === 'object' && !Array.isArray(data) ? data : {};
}

const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

/** The documented, synchronous API (the global `cronium`). */
const api = {
  /** The run's input (any JSON value; {} when the run has none). */
  input() {
    return readJson('input.json', {});
  },

  /** Make `data` (any JSON value) the run's output. */
  output(data) {
    writeAtomic('output.json', toJson(data, 'the output'));
  },

  /** The event's metadata (id, name, type, ...). */
  event() {
    return readJson('event.json', {});
  },

  /** The value of variable `key`, or null when it does not exist. */
  getVariable(key) {
    const vars = variables();
    return hasOwn(vars, checkKey(key)) ? vars[key] : null;
  },

  /** Set variable `key` to `value` (any JSON value). */
  setVariable(key, value) {
    checkKey(key);
    const valueJson = toJson(value, 'the variable value');
    journal('{"op":"set","key":' + JSON.stringify(key) + ',"value":' + valueJson + '}');
    const vars = variables();
    // defineProperty, so that a key such as "__proto__" stays a plain key.
    Object.defineProperty(vars, key, {
      value: JSON.parse(valueJson),
      enumerable: true,
      writable: true,
      configurable: true,
    });
    writeAtomic('variables.json', JSON.stringify(vars));
  },

  /** Delete variable `key` (nothing happens when it does not exist). */
  deleteVariable(key) {
    checkKey(key);
    journal('{"op":"delete","key":' + JSON.stringify(key) + '}');
    const vars = variables();
    if (hasOwn(vars, key)) {
      delete vars[key];
      writeAtomic('variables.json', JSON.stringify(vars));
    }
  },

  /** Set the condition that decides whether the condition actions run. */
  setCondition(condition) {
    const value = Boolean(condition);
    writeAtomic('condition.json', JSON.stringify({ condition: value }));
    return value;
  },

  /** The condition set by this run; false when it was never set. */
  getCondition() {
    const data = readJson('condition.json', null);
    return data !== null && typeof data === 'object' && data.condition === true;
  },
};

const NAMES = [
  'input',
  'output',
  'event',
  'getVariable',
  'setVariable',
  'deleteVariable',
  'setCondition',
  'getCondition',
];

/**
 * The promise-returning face (what `require('cronium')` returns). Older
 * generations exported a class with these methods plus module-level functions
 * of the same names and a `cronium` instance; all three shapes work here.
 */
function Cronium() {
  if (!(this instanceof Cronium)) return new Cronium();
}

NAMES.forEach((name) => {
  const promised = function () {
    const args = arguments;
    return new Promise((resolve) => resolve(api[name].apply(api, args)));
  };
  Cronium[name] = promised;
  Cronium.prototype[name] = promised;
});

Cronium.cronium = new Cronium();
Cronium.default = Cronium;
Cronium.sync = api;

module.exports = Cronium;
