'use strict';
/** The error types of the runtime, as in the Python runtime (runtime/errors.py). */

/** Base class of every error this package throws on purpose. */
class Seq2SeqEdgeError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}

/** A bundle is missing, corrupt, tampered with, disagrees with its manifest, or is not one this runtime decodes. */
class BundleError extends Seq2SeqEdgeError {}

/** Input given to the model (texts, options) has the wrong type or values. */
class InputError extends Seq2SeqEdgeError {}

/** A text holds a symbol that is not in the model's vocabulary. */
class UnknownTokenError extends InputError {}

module.exports = { Seq2SeqEdgeError, BundleError, InputError, UnknownTokenError };
