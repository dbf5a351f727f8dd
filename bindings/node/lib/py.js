'use strict';
/**
 * Python's ways of showing and measuring values, so that every error message reads exactly as the
 * Python runtime's (its messages quote values with repr(), name types with type(x).__name__ and count
 * characters as code points).
 *
 * JSON values arrive from ./pyjson.js: objects as Map (insertion order kept, as a Python dict),
 * integers as number (or BigInt past 2**53), floats as PyFloat.
 */

/** A JSON number written with a fraction or an exponent: a Python float. */
class PyFloat {
  /** @param {number} value */
  constructor(value) {
    this.value = value;
  }
}

/** @param {unknown} v @returns {boolean} whether v is a Python int (bool excluded, as the runtime excludes it) */
function isInt(v) {
  return (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';
}

/** @param {unknown} v @returns {boolean} whether v is a JSON object (a Python dict) */
function isDict(v) {
  return v instanceof Map;
}

/** @param {unknown} v @returns {string} type(v).__name__ */
function typeName(v) {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (isInt(v)) return 'int';
  if (v instanceof PyFloat || typeof v === 'number') return 'float';
  if (typeof v === 'string') return 'str';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map) return 'dict';
  return typeof v;
}

/** @param {unknown} v @returns {boolean} Python's bool(v) for a JSON value */
function truthy(v) {
  if (v === null || v === undefined || v === false) return false;
  if (v instanceof PyFloat) return v.value !== 0;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (typeof v === 'string' || Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  return true;
}

/** @param {string} s @returns {string[]} the code points of s (Python's list(s)) */
function chars(s) {
  return Array.from(s);
}

/** @param {string} s @returns {number} len(s) in Python: code points, not UTF-16 units */
function len(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** @param {string} a @param {string} b @returns {number} comparison by code point, as Python sorts str */
function compareStr(a, b) {
  const x = chars(a);
  const y = chars(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** @param {Iterable<string>} items @returns {string[]} sorted(items) */
function sorted(items) {
  return Array.from(items).sort(compareStr);
}

const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

/** @param {string} s @returns {string} repr(s) */
function reprStr(s) {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
    else if (cp < 0x7f || !NOT_PRINTABLE.test(ch)) out += ch;
    else if (cp <= 0xff) out += '\\x' + hex(cp, 2);
    else if (cp <= 0xffff) out += '\\u' + hex(cp, 4);
    else out += '\\U' + hex(cp, 8);
  }
  return out + quote;
}

function hex(value, width) {
  return value.toString(16).padStart(width, '0');
}

/** @param {number} x @returns {string} repr(float(x)) */
function reprFloat(x) {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, exp] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const e = Number(exp);
  const sign = x < 0 ? '-' : '';
  if (e < -4 || e >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  if (e < 0) return `${sign}0.${'0'.repeat(-e - 1)}${digits}`;
  const whole = digits.slice(0, e + 1).padEnd(e + 1, '0');
  const frac = digits.slice(e + 1) || '0';
  return `${sign}${whole}.${frac}`;
}

/** @param {unknown} v @returns {string} repr(v) for a JSON value (or a JS value standing for one) */
function repr(v) {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : reprFloat(v);
  if (v instanceof PyFloat) return reprFloat(v.value);
  if (typeof v === 'string') return reprStr(v);
  if (Array.isArray(v)) return `[${v.map(repr).join(', ')}]`;
  if (v instanceof Map) return `{${Array.from(v, ([k, x]) => `${repr(k)}: ${repr(x)}`).join(', ')}}`;
  return String(v);
}

/** @param {unknown} v @param {number} n @returns {string} f"{v!r:.n}": the repr cut to n characters */
function reprCut(v, n) {
  return chars(repr(v)).slice(0, n).join('');
}

/** @param {string} s @param {number} start @param {number} [end] @returns {string} s[start:end] by code points */
function slice(s, start, end) {
  return chars(s).slice(start, end).join('');
}

// str.isspace(): the characters Python's str.strip() removes.
const SPACE = new Set([0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
  0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f,
  0x3000]);

/** @param {string} s @returns {boolean} whether s.strip() is empty in Python */
function isBlank(s) {
  for (let i = 0; i < s.length; i++) if (!SPACE.has(s.charCodeAt(i))) return false;
  return true;
}

/**
 * Convert a value from ./pyjson.js into plain JSON-like JS (objects, numbers).
 * @param {unknown} v
 * @returns {unknown}
 */
function toPlain(v) {
  if (v instanceof Map) {
    const out = {};
    for (const [k, x] of v) out[k] = toPlain(x);
    return out;
  }
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'bigint') return Number(v);
  return v;
}

module.exports = {
  PyFloat, isInt, isDict, typeName, truthy, chars, len, compareStr, sorted, repr, reprStr, reprFloat, reprCut,
  slice, isBlank, toPlain,
};
