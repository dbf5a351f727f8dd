'use strict';
/**
 * manifest.schema.json, the one statement of manifest.json's structure and limits, and a small interpreter of
 * it: the twin of runtime/schema.py, walking the same file in the same order, so that both runtimes refuse a
 * manifest at the same field with the same code. The subset read: $ref (local), type, const, enum, minimum,
 * exclusiveMinimum, maximum, minLength, maxLength (in code points), pattern, minItems, maxItems, items,
 * uniqueItems, minProperties, maxProperties, required, properties, additionalProperties, if/then/else, allOf;
 * x-fix is the fix a refusal adds to its message. Object keys beyond `properties` are visited sorted by code
 * point (JavaScript objects list integer-like keys first; Python keeps the file's order).
 *
 * The schema is the npm package's copy (lib/manifest.schema.json, written by `npm pack`'s prepack script), or
 * in a checkout the repository's runtime/manifest.schema.json; the browser demo serves it beside these modules.
 */

const { BundleError } = require('./errors');

function loadSchema() {
  try {
    return require('./manifest.schema.json');
  } catch (error) {
    if (error.code !== 'MODULE_NOT_FOUND') throw error;
  }
  return require('../../../runtime/manifest.schema.json');
}

const SCHEMA = loadSchema();
const MAX_FLOAT = Number.MAX_VALUE;
const ARTICLES = {
  integer: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false', array: 'a list',
  object: 'an object',
};

/** @param {string} pointer e.g. '#/$defs/size/maximum' @returns {any} that part of the schema */
function at(pointer) {
  let node = SCHEMA;
  for (const part of pointer.replace(/^#/, '').split('/')) {
    if (part) node = node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return node;
}

/** JSON.stringify(value) cut to `width` characters. */
function show(value, width = 80) {
  let v = value;
  if (Array.isArray(v)) v = v.slice(0, width / 2);
  else if (v && typeof v === 'object') v = Object.fromEntries(Object.entries(v).slice(0, width / 4));
  else if (typeof v === 'string') v = v.slice(0, width);
  const text = v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? String(v) : JSON.stringify(v);
  return text.length <= width ? text : `${text.slice(0, width - 3)}...`;
}

/** @returns {string} the JSON type of a value */
function typeName(value) {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'string') return 'string';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'object' ? 'object' : typeof value;
}

function isType(value, kind) {
  const found = typeName(value);
  return found === kind || (kind === 'number' && found === 'integer');
}

/** @returns {number} the length of s in code points (a lone surrogate counts one), as Python counts it */
function codePoints(s) {
  let n = s.length;
  for (let i = 0; i + 1 < s.length; i++) {
    const c = s.charCodeAt(i);
    const d = s.charCodeAt(i + 1);
    if (c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
      n--;
      i++;
    }
  }
  return n;
}

/** Comparison by code point, as Python sorts strings. */
function byCodePoint(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
const child = (field, key) => (field ? `${field}.${key}` : key);
const count = (n, noun) => `${n} ${n === 1 ? noun : noun.endsWith('y') ? `${noun.slice(0, -1)}ies` : `${noun}s`}`;

function rangeText(node) {
  const kinds = [].concat(node.type || 'number');
  let noun = kinds.includes('integer') && !kinds.includes('number') ? 'an integer' : 'a number';
  let low = node.minimum;
  let high = node.maximum;
  const above = node.exclusiveMinimum;
  if (high === MAX_FLOAT) {
    noun = 'a finite number';
    high = undefined;
    if (low === -MAX_FLOAT) low = undefined;
  }
  if (low !== undefined && high !== undefined) return `${noun} in [${low}, ${high}]`;
  if (above !== undefined && high !== undefined) return `${noun} in (${above}, ${high}]`;
  const bounds = [low !== undefined ? `>= ${low}` : '', above !== undefined ? `> ${above}` : '',
    high !== undefined ? `<= ${high}` : ''];
  return [noun, ...bounds.filter(Boolean)].join(' ');
}

/**
 * A fast pass for long lists of plain strings or numbers (a vocabulary's tokens, a side's means): true when every
 * item is valid; false sends the caller to the item-by-item walk that names the first bad one.
 */
function plainlyValid(values, items) {
  const node = Object.keys(items).length === 1 && items.$ref ? at(items.$ref) : items;
  const keys = Object.keys(node);
  if (node.type === 'string' && keys.every((k) => ['type', 'minLength', 'maxLength'].includes(k))) {
    const { minLength: low = 0, maxLength: high = Infinity } = node;
    return values.every((v) => typeof v === 'string' && (v.length >= low || codePoints(v) >= low)
      && (v.length <= high || codePoints(v) <= high));
  }
  if (node.type === 'number' && keys.every((k) => ['type', 'minimum', 'exclusiveMinimum', 'maximum'].includes(k))) {
    const { minimum: low = -Infinity, maximum: high = Infinity, exclusiveMinimum: above = -Infinity } = node;
    return values.every((v) => typeof v === 'number' && v >= low && v <= high && v > above);
  }
  return false;
}

/** One validation; `where` names the document in messages. */
class Walk {
  constructor(where) {
    this.where = where;
  }

  fail(code, field, text, node) {
    const fix = node && node['x-fix'];
    const subject = field ? `${this.where}: ${field}` : this.where;
    return new BundleError(`${subject} ${text}${fix ? `; ${fix}` : ''}`, { code, field });
  }

  check(value, node, field) {
    if (node.$ref) this.check(value, at(node.$ref), field);
    if (node.type !== undefined) {
      const kinds = [].concat(node.type);
      if (!kinds.some((k) => isType(value, k))) {
        const wanted = kinds.map((k) => ARTICLES[k] || k).join(' or ');
        throw this.fail('type', field, `must be ${wanted}, not ${typeName(value)} ${show(value)}`, node);
      }
    }
    if (has(node, 'const') && value !== node.const) {
      throw this.fail('const', field, `must be ${show(node.const)}, not ${show(value)}`, node);
    }
    if (node.enum && !node.enum.includes(value)) {
      throw this.fail('enum', field, `must be one of ${show(node.enum)}, not ${show(value)}`, node);
    }
    const kind = typeName(value);
    if (kind === 'integer' || kind === 'number') this.number(value, node, field);
    else if (kind === 'string') this.string(value, node, field);
    else if (kind === 'array') this.array(value, node, field);
    else if (kind === 'object') this.object(value, node, field);
    if (node.if) {
      const branch = this.valid(value, node.if, field) ? node.then : node.else;
      if (branch) this.check(value, branch, field);
    }
    for (const part of node.allOf || []) this.check(value, part, field);
  }

  valid(value, node, field) {
    try {
      this.check(value, node, field);
    } catch (error) {
      if (error instanceof BundleError) return false;
      throw error;
    }
    return true;
  }

  number(value, node, field) {
    const { minimum: low, exclusiveMinimum: above, maximum: high } = node;
    if ((low !== undefined && !(value >= low)) || (above !== undefined && !(value > above))
        || (high !== undefined && !(value <= high))) {
      throw this.fail('range', field, `must be ${rangeText(node)}, not ${show(value)}`, node);
    }
  }

  string(value, node, field) {
    const n = node.minLength !== undefined || node.maxLength !== undefined ? codePoints(value) : 0;
    if (node.minLength !== undefined && n < node.minLength) {
      throw this.fail('too_short', field, `needs at least ${count(node.minLength, 'character')}, not ${show(value)}`,
        node);
    }
    if (node.maxLength !== undefined && n > node.maxLength) {
      throw this.fail('too_long', field, `may hold at most ${count(node.maxLength, 'character')}; it has ${n}: `
        + `${show(value)}`, node);
    }
    if (node.pattern && !new RegExp(node.pattern, 'u').test(value)) {
      throw this.fail('pattern', field, `must match /${node.pattern}/, not ${show(value)}`, node);
    }
  }

  array(value, node, field) {
    if (node.minItems !== undefined && value.length < node.minItems) {
      throw this.fail('too_few', field, `needs at least ${count(node.minItems, 'entry')}; it has ${value.length}`, node);
    }
    if (node.maxItems !== undefined && value.length > node.maxItems) {
      throw this.fail('too_many', field, `may hold at most ${count(node.maxItems, 'entry')}; it has ${value.length}`,
        node);
    }
    if (node.items && !plainlyValid(value, node.items)) {
      value.forEach((item, i) => this.check(item, node.items, `${field}[${i}]`));
    }
    if (node.uniqueItems && !(value.every((v) => typeof v === 'string') && new Set(value).size === value.length)) {
      const seen = new Set();
      value.forEach((item, i) => {
        const key = item !== null && typeof item === 'object' ? `${typeName(item)}:${JSON.stringify(item)}`
          : `${typeof item}:${String(item)}`;
        if (seen.has(key)) throw this.fail('duplicate', `${field}[${i}]`, `repeats an entry: ${show(item)}`, node);
        seen.add(key);
      });
    }
  }

  object(value, node, field) {
    const keys = Object.keys(value);
    if (node.minProperties !== undefined && keys.length < node.minProperties) {
      throw this.fail('too_few', field, `needs at least ${count(node.minProperties, 'entry')}; it has ${keys.length}`,
        node);
    }
    if (node.maxProperties !== undefined && keys.length > node.maxProperties) {
      throw this.fail('too_many', field, `may hold at most ${count(node.maxProperties, 'entry')}; it has `
        + `${keys.length}`, node);
    }
    const known = node.properties || {};
    const required = node.required || [];
    const extra = keys.filter((k) => !has(known, k)).sort(byCodePoint);
    if (node.additionalProperties === false && extra.length) {
      throw this.fail('unknown_field', child(field, extra[0]), `is not one of the fields of ${field || 'the manifest'} `
        + `(${Object.keys(known).join(', ')}): remove it or correct its name`);
    }
    for (const [key, sub] of Object.entries(known)) {
      if (has(value, key)) this.check(value[key], sub, child(field, key));
      else if (required.includes(key)) throw this.fail('missing', child(field, key), 'is missing', sub);
    }
    for (const key of required) {
      if (!has(known, key) && !has(value, key)) throw this.fail('missing', child(field, key), 'is missing');
    }
    if (node.additionalProperties && typeof node.additionalProperties === 'object') {
      for (const key of extra) this.check(value[key], node.additionalProperties, child(field, key));
    }
  }
}

/**
 * Check `value` against the schema at `pointer`; the first violation is a BundleError whose field is its path
 * and whose code names the keyword (type, missing, range, ...).
 */
function validate(value, pointer = '#', { where = 'manifest.json', field = '' } = {}) {
  new Walk(where).check(value, at(pointer), field);
}

/**
 * The deepest nesting of [ and { outside strings, counted as runtime/schema.py's nesting_depth counts it:
 * escaped backslashes and quotes dropped, then each quoted run, then every bracket counted.
 */
function nestingDepth(text) {
  const plain = text.replaceAll('\\\\', '').replaceAll('\\"', '').replace(/"[^"]*"/g, '');
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < plain.length; i++) {
    const c = plain.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/**
 * The manifest's bytes as JSON, held to strict JSON (UTF-8, no byte order mark) and to the schema's x-limits.
 * @param {Uint8Array} bytes @param {string} file the manifest's name in messages
 */
function readJson(bytes, file) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new BundleError(`${file}: not valid UTF-8; the manifest is corrupt: export the bundle again`,
      { code: 'not_utf8' });
  }
  if (text.startsWith('\ufeff')) {
    throw new BundleError(`${file}: begins with a byte order mark; save it as UTF-8 without one`, { code: 'bom' });
  }
  const { max_depth: maxDepth } = SCHEMA['x-limits'];
  if (nestingDepth(text) > maxDepth) {
    throw new BundleError(`${file}: JSON nested deeper than ${maxDepth} levels cannot be a manifest; the manifest `
      + 'is corrupt', { code: 'too_deep' });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BundleError(`${file}: not valid JSON (${error.message}); the manifest is corrupt: export the bundle `
      + 'again', { code: 'not_json' });
  }
}

module.exports = {
  SCHEMA, at, show, typeName, codePoints, byCodePoint, validate, readJson, nestingDepth,
};
