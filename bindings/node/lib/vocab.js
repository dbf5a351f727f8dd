'use strict';
/** Vocabularies: a port of runtime/vocab.py (index <-> token maps with special ids, from the manifest). */

const { BundleError, UnknownTokenError } = require('./errors');
const { show } = require('./schema');

const SPECIAL_IDS = ['pad_id', 'unk_id', 'start_id', 'end_id'];
// What Python's str.strip() removes (str.isspace): a text of only these is blank in either runtime.
const SPACE = new Set([0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
  0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f,
  0x3000]);

/** @param {string} text @returns {boolean} whether text holds nothing but white space (as text.strip() == '') */
function isBlank(text) {
  for (let i = 0; i < text.length; i++) if (!SPACE.has(text.charCodeAt(i))) return false;
  return true;
}

/** @param {string} text @param {string} separator @returns {string[]} the symbols of text */
function split(text, separator) {
  return separator === '' ? Array.from(text) : text.split(separator).filter((s) => s !== '');
}

/** text quoted, cut to the part around `position` (a code point index) when it is long. */
function excerpt(text, position, width = 30) {
  const points = Array.from(text);
  if (points.length <= 2 * width + 20) return JSON.stringify(text);
  const start = Math.max(0, position - width);
  return `${start ? '...' : ''}${JSON.stringify(points.slice(start, position + width).join(''))}`
    + `${position + width < points.length ? '...' : ''} (a text of ${points.length} characters)`;
}

/**
 * The rules between a vocabulary's fields (its structure is manifest.schema.json's), in runtime/vocab.py's
 * order: every special id indexes the tokens; on_unknown 'unk' has an unk_id.
 * @param {object} data @param {string} where @param {string} field
 */
function checkVocabulary(data, where, field) {
  const prefix = field ? `${field}.` : '';
  for (const name of SPECIAL_IDS) {
    const value = data[name];
    if (value !== undefined && value !== null && value >= data.tokens.length) {
      throw new BundleError(`${where}: ${prefix}${name} is ${value}, past the last of ${data.tokens.length} tokens`,
        { code: 'index', field: prefix + name });
    }
  }
  if (data.on_unknown === 'unk' && (data.unk_id === undefined || data.unk_id === null)) {
    throw new BundleError(`${where}: ${prefix}on_unknown is 'unk' but there is no unk_id to map unknown symbols to`,
      { code: 'unk_id', field: `${prefix}unk_id` });
  }
}

/** An ordered token list; a token's id is its index. */
class Vocabulary {
  /**
   * Build from the manifest's `vocabulary` object, which manifest.js has checked.
   * @param {object} data
   * @returns {Vocabulary}
   */
  static fromDict(data) {
    const get = (key, fallback) => (data[key] === undefined ? fallback : data[key]);
    return new Vocabulary(data.tokens, {
      separator: get('separator', ''), padId: get('pad_id', null), unkId: get('unk_id', null),
      startId: get('start_id', null), endId: get('end_id', null), onUnknown: get('on_unknown', 'error'),
      reverse: get('reverse', false),
    });
  }

  /**
   * @param {string[]} tokens
   * @param {{separator: string, padId: number|null, unkId: number|null, startId: number|null,
   *   endId: number|null, onUnknown: string, reverse: boolean}} fields
   */
  constructor(tokens, { separator, padId, unkId, startId, endId, onUnknown, reverse }) {
    /** @type {string[]} */
    this.tokens = tokens;
    this.separator = separator;
    /** @type {number|null} */ this.padId = padId;
    /** @type {number|null} */ this.unkId = unkId;
    /** @type {number|null} */ this.startId = startId;
    /** @type {number|null} */ this.endId = endId;
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
        throw new UnknownTokenError(`${show(sym, 40)} at position ${position} of ${excerpt(text, position)} `
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
    const text = known.slice(0, limit).map((t) => JSON.stringify(t)).join(' ');
    return text + (known.length > limit ? ' ...' : '');
  }
}

module.exports = { Vocabulary, checkVocabulary, isBlank };
