'use strict';
/**
 * seq2seq-edge for Node.js: load a bundle, verify it as the Python runtime does, decode text greedily.
 *
 *   const { load } = require('seq2seq-edge-node');
 *   const model = await load('tests/data/dates_tiny');
 *   await model.generateText(['14 juillet 2023']); // ['2023-07-14']
 *
 * Only onnxruntime-node is needed. Token seq2seq bundles (generateText) and real-valued forecasts of features
 * to features (generateFeatures); an autoencoder, or a bundle mixing tokens and features, is refused with a
 * BundleError that points to the Python runtime.
 */

const { openBundle } = require('./lib/bundle');
const { BundleError, InputError, Seq2SeqEdgeError, UnknownTokenError } = require('./lib/errors');
const { Model } = require('./lib/model');
const { connect, RemoteModel } = require('./remote');

function deepFreeze(value) {
  if (value && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

/**
 * Open and verify the bundle at `dir`: manifest format and bounds, every graph's sha256, no external data,
 * every graph's tensor names, dtypes and shapes against the manifest, the state and constants contract.
 * @param {string} dir the bundle directory
 * @param {{threads?: number}} [options] threads: onnxruntime intra-op threads (default 1)
 * @returns {Promise<Model>}
 * @throws {BundleError} when anything is missing, corrupt, tampered with or not a token seq2seq bundle
 */
async function load(dir, { threads = 1 } = {}) {
  const { manifest, sessions } = await openBundle(String(dir), threads);
  return new Model(manifest, sessions, deepFreeze(structuredClone(manifest.raw)), { threads });
}

module.exports = {
  load, connect, Model, RemoteModel, BundleError, InputError, UnknownTokenError, Seq2SeqEdgeError,
};
