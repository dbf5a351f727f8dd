'use strict';
/**
 * The error types of the runtime, as in the Python runtime (runtime/errors.py). Every error carries a stable
 * `code` and, where one field of the manifest is at fault, `field` (its path, e.g. 'decode.modes.fused.decoder'
 * or 'state[0].size'; null otherwise): the Python runtime gives the same code and field for the same refusal.
 */

/** Base class of every error this package throws on purpose. */
class Seq2SeqEdgeError extends Error {
  static code = 'error';

  /** @param {string} message @param {{code?: string, field?: string|null}} [where] */
  constructor(message, { code, field } = {}) {
    super(message);
    this.name = this.constructor.name;
    /** @type {string} */
    this.code = code || this.constructor.code;
    /** @type {string|null} */
    this.field = field ?? null;
  }
}

/** A bundle is missing, corrupt, tampered with, disagrees with its manifest, or is not one this runtime decodes. */
class BundleError extends Seq2SeqEdgeError {
  static code = 'bundle';
}

/** Input given to the model (texts, options) has the wrong type or values. */
class InputError extends Seq2SeqEdgeError {
  static code = 'input';
}

/** A text holds a symbol that is not in the model's vocabulary. */
class UnknownTokenError extends InputError {
  static code = 'unknown_token';
}

module.exports = { Seq2SeqEdgeError, BundleError, InputError, UnknownTokenError };
