'use strict';
/**
 * Bytes -> text -> JSON exactly as the Python runtime reads a manifest (`json.loads(data.decode("utf-8"))`),
 * so that a corrupt manifest is refused with the same words: CPython's UTF-8 decoder's and json's error
 * messages (line, column, char counted in code points), NaN/Infinity accepted, objects as Map (a dict keeps
 * its keys' order, integer-like keys included), ints and floats told apart (PyFloat).
 */

const { PyFloat } = require('./py');

/** What json.JSONDecodeError or UnicodeDecodeError would say. */
class DecodeError extends Error {}

/** Nesting deeper than this is refused (Python's own bound comes from its call stack, about 990). */
const MAX_DEPTH = 900;

/** An error message naming a byte span the way CPython's UnicodeDecodeError does. */
function utf8Error(bytes, start, end, reason) {
  const where = end - start === 1
    ? `byte 0x${bytes[start].toString(16).padStart(2, '0')} in position ${start}`
    : `bytes in position ${start}-${end - 1}`;
  const error = new DecodeError(`'utf-8' codec can't decode ${where}: ${reason}`);
  Object.assign(error, { start, reason });
  return error;
}

/**
 * The number of bytes of a valid sequence starting at i, or an error for the first bad one.
 * @returns {number}
 */
function sequenceLength(bytes, i) {
  const b = bytes[i];
  if (b < 0x80) return 1;
  if (b < 0xc2 || b > 0xf4) throw utf8Error(bytes, i, i + 1, 'invalid start byte');
  const need = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
  let low = 0x80;
  let high = 0xbf;
  if (b === 0xe0) low = 0xa0;
  else if (b === 0xed) high = 0x9f;
  else if (b === 0xf0) low = 0x90;
  else if (b === 0xf4) high = 0x8f;
  for (let k = 1; k < need; k++) {
    if (i + k >= bytes.length) throw utf8Error(bytes, i, bytes.length, 'unexpected end of data');
    const c = bytes[i + k];
    if (c < (k === 1 ? low : 0x80) || c > (k === 1 ? high : 0xbf)) {
      throw utf8Error(bytes, i, i + k, 'invalid continuation byte');
    }
  }
  return need;
}

/**
 * bytes.decode("utf-8"), strict.
 * @param {Uint8Array} bytes
 * @returns {string}
 * @throws {DecodeError} with Python's message, and .start / .reason as UnicodeDecodeError has them
 */
function decodeUtf8(bytes) {
  for (let i = 0; i < bytes.length;) i += sequenceLength(bytes, i);
  return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
}

const WS = new Set([' ', '\t', '\n', '\r']);
const ESCAPES = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** A recursive-descent port of CPython 3.11's C json scanner (_json.c), errors included. */
class Parser {
  constructor(text) {
    this.s = text;
  }

  fail(message, pos) {
    const before = this.s.slice(0, pos);
    const lineno = (before.match(/\n/g) || []).length + 1;
    const lineStart = before.lastIndexOf('\n') + 1;
    const col = Array.from(before.slice(lineStart)).length + 1;
    const char = Array.from(before).length;
    return new DecodeError(`${message}: line ${lineno} column ${col} (char ${char})`);
  }

  skip(i) {
    while (i < this.s.length && WS.has(this.s[i])) i++;
    return i;
  }

  /** scan_once: a value at i, or null (StopIteration) when none starts there. */
  value(i, depth) {
    const s = this.s;
    if (i >= s.length) return null;
    const c = s[i];
    if (c === '"') return this.string(i + 1);
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) throw Object.assign(new DecodeError('nested too deeply'), { recursion: true });
      return c === '{' ? this.object(i + 1, depth + 1) : this.array(i + 1, depth + 1);
    }
    for (const [word, v] of [['null', null], ['true', true], ['false', false], ['NaN', new PyFloat(NaN)],
      ['Infinity', new PyFloat(Infinity)], ['-Infinity', new PyFloat(-Infinity)]]) {
      if (s.startsWith(word, i)) return [v, i + word.length];
    }
    return this.number(i);
  }

  number(start) {
    const s = this.s;
    const digit = (k) => k < s.length && s[k] >= '0' && s[k] <= '9';
    let i = start;
    if (s[i] === '-') i++;
    if (s[i] >= '1' && s[i] <= '9') while (digit(++i));
    else if (s[i] === '0') i++;
    else return null;
    let float = false;
    if (s[i] === '.' && digit(i + 1)) {
      float = true;
      i += 2;
      while (digit(i)) i++;
    }
    if (s[i] === 'e' || s[i] === 'E') {
      let k = i + 1;
      if (s[k] === '-' || s[k] === '+') k++;
      if (digit(k)) {
        while (digit(k)) k++;
        float = true;
        i = k;
      }
    }
    const text = s.slice(start, i);
    if (float) return [new PyFloat(Number(text)), i];
    const n = Number(text);
    return [Number.isSafeInteger(n) ? (n === 0 ? 0 : n) : BigInt(text), i];
  }

  hex4(i, errorAt) {
    const h = this.s.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) throw this.fail('Invalid \\uXXXX escape', errorAt);
    return parseInt(h, 16);
  }

  string(i) {
    const s = this.s;
    const begin = i - 1;
    let out = '';
    for (;;) {
      let j = i;
      while (j < s.length && s[j] !== '"' && s[j] !== '\\' && s.charCodeAt(j) > 0x1f) j++;
      out += s.slice(i, j);
      if (j >= s.length) throw this.fail('Unterminated string starting at', begin);
      if (s[j] === '"') return [out, j + 1];
      if (s[j] !== '\\') throw this.fail('Invalid control character at', j);
      j++;
      if (j >= s.length) throw this.fail('Unterminated string starting at', begin);
      if (s[j] !== 'u') {
        if (!(s[j] in ESCAPES)) throw this.fail('Invalid \\escape', j - 1);
        out += ESCAPES[s[j]];
        i = j + 1;
        continue;
      }
      let end = j + 5;
      if (end >= s.length) throw this.fail('Invalid \\uXXXX escape', j);
      let code = this.hex4(j + 1, j);
      if (code >= 0xd800 && code <= 0xdbff && s[end] === '\\' && s[end + 1] === 'u') {
        if (end + 6 >= s.length) throw this.fail('Invalid \\uXXXX escape', end + 1);
        const low = this.hex4(end + 2, end + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          end += 6;
        }
      }
      out += String.fromCodePoint(code);
      i = end;
    }
  }

  object(i, depth) {
    const s = this.s;
    const out = new Map();
    i = this.skip(i);
    if (s[i] === '}') return [out, i + 1];
    for (;;) {
      if (s[i] !== '"') throw this.fail('Expecting property name enclosed in double quotes', i);
      const [key, afterKey] = this.string(i + 1);
      i = this.skip(afterKey);
      if (s[i] !== ':') throw this.fail("Expecting ':' delimiter", i);
      i = this.skip(i + 1);
      const found = this.value(i, depth);
      if (found === null) throw this.fail('Expecting value', i);
      out.set(key, found[0]); // a repeated key: the last value, at the first one's place (as a dict)
      i = this.skip(found[1]);
      if (s[i] === '}') return [out, i + 1];
      if (s[i] !== ',') throw this.fail("Expecting ',' delimiter", i);
      i = this.skip(i + 1);
    }
  }

  array(i, depth) {
    const s = this.s;
    const out = [];
    i = this.skip(i);
    if (s[i] === ']') return [out, i + 1];
    for (;;) {
      const found = this.value(i, depth);
      if (found === null) throw this.fail('Expecting value', i);
      out.push(found[0]);
      i = this.skip(found[1]);
      if (s[i] === ']') return [out, i + 1];
      if (s[i] !== ',') throw this.fail("Expecting ',' delimiter", i);
      i = this.skip(i + 1);
    }
  }

  /** json.loads: one value, whitespace around it, nothing else. */
  parse() {
    if (this.s.startsWith('\ufeff')) throw this.fail('Unexpected UTF-8 BOM (decode using utf-8-sig)', 0);
    const start = this.skip(0);
    const found = this.value(start, 0);
    if (found === null) throw this.fail('Expecting value', start);
    const end = this.skip(found[1]);
    if (end !== this.s.length) throw this.fail('Extra data', end);
    return found[0];
  }
}

/**
 * json.loads(text).
 * @param {string} text
 * @returns {unknown} Map, Array, string, number, BigInt, PyFloat, boolean or null
 * @throws {DecodeError} (with .recursion set when nested too deeply)
 */
function loads(text) {
  return new Parser(text).parse();
}

module.exports = { loads, decodeUtf8, DecodeError, MAX_DEPTH };
