'use strict';
/** Vocabularies: a port of runtime/vocab.py (index <-> token maps with special ids, from the manifest). */

const { BundleError, UnknownTokenError } = require('./errors');
const py = require('./py');

const MAX_TOKENS = 1000000;
const MAX_TOKEN_CHARS = 256;

/** @param {string} text @param {string} separator @returns {string[]} the symbols of text */
function split(text, separator) {
  return separator === '' ? py.chars(text) : text.split(separator).filter((s) => s !== '');
}

/** repr(text), cut to the part around `position` when it is long (error messages stay short). */
function excerpt(text, position, width = 30) {
  const n = py.len(text);
  if (n <= 2 * width + 20) return py.reprStr(text);
  const start = Math.max(0, position - width);
  return `${start ? '...' : ''}${py.reprStr(py.slice(text, start, position + width))}`
    + `${position + width < n ? '...' : ''} (a text of ${n} characters)`;
}

/** An ordered token list; a token's id is its index. */
class Vocabulary {
  /**
   * Build from the manifest's `vocabulary` object (a Map from ./pyjson.js), checked as the Python
   * runtime checks it (Vocabulary.from_dict and __post_init__).
   * @param {Map<string, unknown>} data
   * @returns {Vocabulary}
   */
  static fromDict(data) {
    const tokens = data.get('tokens');
    if (!Array.isArray(tokens)) {
      throw new BundleError(`vocabulary: field 'tokens' must be a list of strings, got ${py.typeName(tokens)}`);
    }
    const get = (key, fallback) => (data.has(key) ? data.get(key) : fallback);
    return new Vocabulary(tokens, {
      separator: get('separator', ''), padId: get('pad_id', null), unkId: get('unk_id', null),
      startId: get('start_id', null), endId: get('end_id', null), onUnknown: get('on_unknown', 'error'),
      reverse: get('reverse', false),
    });
  }

  /**
   * @param {unknown[]} tokens
   * @param {{separator: unknown, padId: unknown, unkId: unknown, startId: unknown, endId: unknown,
   *   onUnknown: unknown, reverse: unknown}} fields
   */
  constructor(tokens, { separator, padId, unkId, startId, endId, onUnknown, reverse }) {
    if (!(tokens.length > 0 && tokens.length <= MAX_TOKENS)) {
      throw new BundleError(`vocabulary: needs 1 to ${MAX_TOKENS} tokens, got ${tokens.length}`);
    }
    const bad = tokens.find((t) => !(typeof t === 'string' && py.len(t) > 0 && py.len(t) <= MAX_TOKEN_CHARS));
    if (bad !== undefined) {
      throw new BundleError(`vocabulary: every token must be a string of 1 to ${MAX_TOKEN_CHARS} characters, `
        + `got ${py.reprCut(bad, 80)}`);
    }
    if (new Set(tokens).size !== tokens.length) throw new BundleError('vocabulary: tokens must be unique');
    const ids = { pad_id: padId, unk_id: unkId, start_id: startId, end_id: endId };
    for (const [name, value] of Object.entries(ids)) {
      if (value !== null && !(py.isInt(value) && value >= 0 && value < tokens.length)) {
        throw new BundleError(`vocabulary: ${name}=${py.repr(value)} is not an index into ${tokens.length} tokens`);
      }
    }
    if (typeof separator !== 'string' || py.len(separator) > 1) {
      throw new BundleError(`vocabulary: separator must be '' or one character, got ${py.reprCut(separator, 80)}`);
    }
    if (typeof reverse !== 'boolean') {
      throw new BundleError(`vocabulary: reverse must be true or false, got ${py.reprCut(reverse, 80)}`);
    }
    if (onUnknown !== 'error' && onUnknown !== 'unk') {
      throw new BundleError(`vocabulary: on_unknown must be one of ('error', 'unk'), got ${py.repr(onUnknown)}`);
    }
    if (onUnknown === 'unk' && unkId === null) throw new BundleError("vocabulary: on_unknown='unk' needs an unk_id");
    /** @type {string[]} */
    this.tokens = tokens;
    this.separator = separator;
    /** @type {number|null} */ this.padId = padId === null ? null : Number(padId);
    /** @type {number|null} */ this.unkId = unkId === null ? null : Number(unkId);
    /** @type {number|null} */ this.startId = startId === null ? null : Number(startId);
    /** @type {number|null} */ this.endId = endId === null ? null : Number(endId);
    this.onUnknown = onUnknown;
    this.reverse = reverse;
    this.index = new Map(tokens.map((t, i) => [t, i]));
    this.special = new Set([this.padId, this.unkId, this.startId, this.endId].filter((i) => i !== null));
  }

  /** @returns {number} the number of tokens */
  get size() {
    return this.tokens.length;
  }

  /**
   * Map one text to ids (no start or end token added), last-first when the vocabulary is `reverse`.
   * @param {string} text
   * @returns {number[]}
   * @throws {UnknownTokenError} for a symbol outside the vocabulary when on_unknown is "error"
   */
  encode(text) {
    const ids = split(text, this.separator).map((sym, position) => {
      const idx = this.index.get(sym);
      if (idx !== undefined && !this.special.has(idx)) return idx;
      if (this.onUnknown === 'error') {
        throw new UnknownTokenError(`${py.reprCut(sym, 40)} at position ${position} of ${excerpt(text, position)} `
          + `is not in the model's vocabulary; known symbols: ${this.knownPreview()}. Remove or replace it`);
      }
      return this.unkId;
    });
    return this.reverse ? ids.reverse() : ids;
  }

  /**
   * Map ids back to text, stopping at the end id and skipping pad and start ids.
   * @param {Iterable<number>} ids
   * @returns {string}
   */
  decode(ids) {
    const out = [];
    for (const idx of ids) {
      if (idx === this.endId) break;
      if (idx === this.padId || idx === this.startId) continue;
      const token = this.tokens.at(idx); // a negative id counts from the end, as Python's list index does
      if (token === undefined) throw new RangeError(`token id ${idx} is out of range (${this.size} tokens)`);
      out.push(token);
    }
    return out.join(this.separator);
  }

  /** The first known (non-special) symbols, as the unknown-symbol message lists them. */
  knownPreview(limit = 60) {
    const known = this.tokens.filter((t, i) => !this.special.has(i));
    const text = known.slice(0, limit).map(py.reprStr).join(' ');
    return text + (known.length > limit ? ' ...' : '');
  }
}

module.exports = { Vocabulary };
