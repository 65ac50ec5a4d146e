/*
 * Cronium runtime helpers for Node.js scripts (CommonJS, no dependencies).
 *
 * Two faces over the same run-folder files (see runtime_helpers/PROTOCOL.md):
 *
 * - the global `cronium` that the bootstrap (cronium_run.js) installs is the
 *   documented, synchronous API: `cronium.getVariable(key)` returns the value;
 * - `require('cronium')` (the host puts this folder on NODE_PATH) returns what
 *   Cronium's runtime SDK exports: the same names, each returning a Promise
 *   (`await cronium.getVariable(key)`, `.then(...)`), plus a `cronium`
 *   instance and a constructible `Cronium` (`new Cronium()`). Its `.sync`
 *   property is the synchronous API.
 *
 * Tool actions (`executeToolAction`, `sendEmail`, ...) are not sent by the
 * script: each request is appended to actions.jsonl and the host carries it
 * out after the script ended.
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

// Keep in step with cronium_provider/runners/protocol.py (MAX_ACTION_REQUESTS, normalise_action).
const ACTIONS_FILE = 'actions.jsonl';
const MAX_ACTION_REQUESTS = 100;
const SEND_ACTION = { slack: 'slack-send-message', discord: 'discord-send-message', email: 'send-email' };
const SEND_ALIASES = ['send', 'send-message', 'sendmessage', 'message', 'send-email', 'sendemail'];
const TRUE_WORDS = ['true', '1', 'yes', 'on'];
const FALSE_WORDS = ['false', '0', 'no', 'off'];

/** Base of the errors of Cronium's runtime SDK (the names scripts may catch). */
class CroniumError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CroniumError';
  }
}

/** Kept for scripts that catch it; with the file protocol there is no API to fail. */
class CroniumAPIError extends CroniumError {
  constructor(statusCode, message) {
    super('API Error (' + statusCode + '): ' + message);
    this.name = 'CroniumAPIError';
    this.statusCode = statusCode;
  }
}

/** Kept for scripts that catch it; with the file protocol nothing times out. */
class CroniumTimeoutError extends CroniumError {
  constructor(message) {
    super(message);
    this.name = 'CroniumTimeoutError';
  }
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function textForm(value) {
  return typeof value === 'string' ? value : toJson(value, 'the variable value');
}

function jsonOrText(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    return text;
  }
}

/** What the host's protocol.appended computes, on this run's view of the variables. */
function appended(vars, key, value, separator) {
  const current = hasOwn(vars, key) ? vars[key] : null;
  if (current === null || current === '') return value;
  if (Array.isArray(current)) return current.concat([value]);
  return jsonOrText(textForm(current) + separator + textForm(value));
}

function storeVariable(vars, key, value) {
  // defineProperty, so that a key such as "__proto__" stays a plain key.
  Object.defineProperty(vars, key, { value, enumerable: true, writable: true, configurable: true });
  writeAtomic('variables.json', JSON.stringify(vars));
}

function conditionValue(condition) {
  if (typeof condition === 'string') {
    const word = condition.trim().toLowerCase();
    if (TRUE_WORDS.indexOf(word) >= 0) return true;
    if (FALSE_WORDS.indexOf(word) >= 0) return false;
  }
  return Boolean(condition);
}

function countLines(name) {
  let text;
  try {
    text = fs.readFileSync(filePath(name), 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return 0;
    throw error;
  }
  return text.split('\n').filter((line) => line.trim() !== '').length;
}

// A Cronium key; keep in step with cronium_provider/naming.py (variable_key_problem).
const KEY = /^[A-Za-z0-9_.-]{1,100}$/;
const KEY_RULE = "a key is 1 to 100 of A-Z a-z 0-9 _ . - with no '..'";

function checkKey(key) {
  if (typeof key !== 'string') {
    throw new TypeError('cronium: a variable key must be a string, not ' + typeof key);
  }
  if (!KEY.test(key) || key.indexOf('..') >= 0) {
    throw new CroniumError("cronium: variable key '" + key + "' is refused: " + KEY_RULE);
  }
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

  /**
   * The event's metadata (id, name, type, ...), also under the names of
   * Cronium's runtime context: eventId (a string), eventName, eventType, and
   * executionId when the host or CRONIUM_EXECUTION_ID gives one.
   */
  event() {
    const data = readJson('event.json', {});
    if (!isPlainObject(data)) return data;
    [['eventId', 'id'], ['eventName', 'name'], ['eventType', 'type']].forEach((pair) => {
      const alias = pair[0];
      const source = pair[1];
      if (!hasOwn(data, alias) && data[source] !== undefined && data[source] !== null) {
        data[alias] = alias === 'eventId' ? String(data[source]) : data[source];
      }
    });
    if (!hasOwn(data, 'executionId') && process.env.CRONIUM_EXECUTION_ID) {
      data.executionId = process.env.CRONIUM_EXECUTION_ID;
    }
    return data;
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
    storeVariable(variables(), key, JSON.parse(valueJson));
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

  /**
   * Append `value` to variable `key`, as Bash's cronium_append_variable KEY
   * VALUE [SEP]: a missing, null or empty variable becomes `value`, an array
   * gets a new element, anything else is joined as text with `separator`
   * (stored as JSON when the result is JSON text). The host applies it to the
   * variable as it is when the run ends.
   */
  appendVariable(key, value, separator) {
    checkKey(key);
    const sep = separator === undefined ? '' : separator;
    if (typeof sep !== 'string') throw new TypeError('cronium: the separator must be a string');
    const valueJson = toJson(value, 'the variable value');
    journal(
      '{"op":"append","key":' + JSON.stringify(key) + ',"value":' + valueJson + ',"separator":' +
        JSON.stringify(sep) + '}'
    );
    const vars = variables();
    storeVariable(vars, key, appended(vars, key, JSON.parse(valueJson), sep));
  },

  /**
   * Set the condition that decides whether the condition actions run;
   * "false", "0", "no" and "off" (any case) are false.
   */
  setCondition(condition) {
    const value = conditionValue(condition);
    writeAtomic('condition.json', JSON.stringify({ condition: value }));
    return value;
  },

  /** The condition set by this run; false when it was never set. */
  getCondition() {
    const data = readJson('condition.json', null);
    return data !== null && typeof data === 'object' && data.condition === true;
  },

  /**
   * Ask for tool action `action` of `tool` with `config`; the host carries it
   * out after the run (at most 100 per run). The script cannot see the
   * result: this returns null, what Cronium's SDK returns for an action that
   * answered no data.
   */
  executeToolAction(tool, action, config) {
    if (typeof tool !== 'string' || !tool.trim()) throw new TypeError('cronium: the tool must be a non-empty string');
    if (typeof action !== 'string' || !action.trim()) {
      throw new TypeError('cronium: the action must be a non-empty string');
    }
    const settings = config === undefined || config === null ? {} : config;
    if (!isPlainObject(settings)) throw new TypeError('cronium: the tool action config must be an object');
    const toolId = tool.trim().toLowerCase();
    let actionId = action.trim();
    if (hasOwn(SEND_ACTION, toolId) && SEND_ALIASES.indexOf(actionId.toLowerCase().replace(/_/g, '-')) >= 0) {
      actionId = SEND_ACTION[toolId];
    }
    const line = '{"tool":' + JSON.stringify(toolId) + ',"action":' + JSON.stringify(actionId) + ',"config":' +
      toJson(settings, 'the tool action config') + '}';
    if (countLines(ACTIONS_FILE) >= MAX_ACTION_REQUESTS) {
      throw new CroniumError('cronium: a run may ask for at most ' + MAX_ACTION_REQUESTS + ' tool actions');
    }
    fs.appendFileSync(filePath(ACTIONS_FILE), line + '\n');
    return null;
  },

  /**
   * Ask for an email: sendEmail({ to, subject, body, ...extras }) as Cronium's
   * SDK, or sendEmail(to, subject, body, extras). `to` is one address or an array.
   */
  sendEmail(options, subject, body, extras) {
    const o = arguments.length === 1 && isPlainObject(options) ? options : Object.assign({}, extras, { to: options, subject, body });
    const rest = Object.assign({}, o);
    delete rest.to;
    delete rest.subject;
    delete rest.body;
    const config = Object.assign({ to: Array.isArray(o.to) ? o.to : [o.to], subject: o.subject, body: o.body }, rest);
    return api.executeToolAction('email', 'send_message', config);
  },

  /** Ask for a Slack message: sendSlackMessage({ channel, text, ...extras }) or (channel, text, extras). */
  sendSlackMessage(options, text, extras) {
    const o = arguments.length === 1 && isPlainObject(options) ? options : Object.assign({}, extras, { channel: options, text });
    const rest = Object.assign({}, o);
    delete rest.channel;
    delete rest.text;
    return api.executeToolAction('slack', 'send_message', Object.assign({ channel: o.channel, text: o.text }, rest));
  },

  /** Ask for a Discord message: sendDiscordMessage({ channelId, content, ...extras }) or (channelId, content, extras). */
  sendDiscordMessage(options, content, extras) {
    const o =
      arguments.length === 1 && isPlainObject(options) ? options : Object.assign({}, extras, { channelId: options, content });
    const rest = Object.assign({}, o);
    delete rest.channelId;
    delete rest.content;
    return api.executeToolAction(
      'discord',
      'send_message',
      Object.assign({ channelId: o.channelId, content: o.content }, rest)
    );
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
  'appendVariable',
  'executeToolAction',
  'sendEmail',
  'sendSlackMessage',
  'sendDiscordMessage',
];

/**
 * The promise-returning face (what `require('cronium')` returns). Cronium's
 * runtime SDK exports a class whose methods all return Promises, plus
 * module-level functions of the same names and a `cronium` instance; all three
 * shapes work here: `new Cronium()` (the module itself, or its `Cronium` and
 * `default`, the SDK's typings' named and default exports), `.cronium`, and
 * the functions. `executionId` is CRONIUM_EXECUTION_ID (null when unset);
 * nothing needs a token, so the constructor never throws.
 */
function Cronium() {
  if (!(this instanceof Cronium)) return new Cronium();
  this.executionId = process.env.CRONIUM_EXECUTION_ID || null;
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
Cronium.Cronium = Cronium;
Cronium.default = Cronium;
Cronium.sync = api;
Cronium.CroniumError = CroniumError;
Cronium.CroniumAPIError = CroniumAPIError;
Cronium.CroniumTimeoutError = CroniumTimeoutError;

module.exports = Cronium;
