'use strict';
/**
 * Refuse ONNX graphs that reference external data, without an ONNX library: a port of runtime/onnx_scan.py.
 *
 * A TensorProto can keep its bytes in another file (data_location = EXTERNAL, with a location that
 * onnxruntime resolves against the working directory, or an absolute or ../ path): a bundle could then
 * make the runtime read any file. The graph is walked at the protobuf wire level (initializers, sparse
 * initializers, node attributes, subgraphs, functions, training info) before any session is created.
 */

const { BundleError } = require('./errors');

const MAX_DEPTH = 64; // nested graphs / messages

// (message, field number) -> the message that field holds; every path to a TensorProto.
const MESSAGES = {
  model: { 7: 'graph', 20: 'training_info', 25: 'function' },
  graph: { 1: 'node', 5: 'tensor', 15: 'sparse_tensor' },
  node: { 5: 'attribute' },
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse_tensor', 23: 'sparse_tensor' },
  function: { 7: 'node', 11: 'attribute' },
  training_info: { 1: 'graph', 2: 'graph' },
  sparse_tensor: { 1: 'tensor', 2: 'tensor' },
};
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const EXTERNAL = 1n;

class Malformed extends Error {}

/** @returns {[bigint, number]} the varint at pos and the position after it */
function varint(data, pos, end) {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= end || shift > 63n) throw new Malformed('truncated or oversized varint');
    const byte = data[pos++];
    value |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return [value, pos];
    shift += 7n;
  }
}

/**
 * Each field of one message: [number, wire type, value or start, end].
 * @returns {Generator<[number, number, bigint|number, number]>}
 */
function* fields(data, pos, end) {
  while (pos < end) {
    let key;
    [key, pos] = varint(data, pos, end);
    const number = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      let value;
      [value, pos] = varint(data, pos, end);
      yield [number, wire, value, pos];
    } else if (wire === 2) {
      let length;
      [length, pos] = varint(data, pos, end);
      if (BigInt(pos) + length > BigInt(end)) throw new Malformed('a field runs past the end of its message');
      const stop = pos + Number(length);
      yield [number, wire, pos, stop];
      pos = stop;
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
      if (pos > end) throw new Malformed('truncated fixed-width field');
    } else {
      throw new Malformed(`unsupported wire type ${wire}`);
    }
  }
}

/** @returns {boolean} true when a tensor inside this message keeps its data outside the file */
function walk(data, kind, pos, end, depth) {
  if (depth > MAX_DEPTH) throw new Malformed(`messages nested more than ${MAX_DEPTH} deep`);
  for (const [number, wire, start, stop] of fields(data, pos, end)) {
    if (kind === 'tensor') {
      if ((number === TENSOR_DATA_LOCATION && wire === 0 && start === EXTERNAL)
          || (number === TENSOR_EXTERNAL_DATA && wire === 2)) return true;
      continue;
    }
    const child = MESSAGES[kind][number];
    if (child !== undefined && wire === 2 && walk(data, child, start, stop, depth + 1)) return true;
  }
  return false;
}

/**
 * Throw BundleError if the serialized ModelProto `data` references external data (code 'external_data'), or is
 * not a model ('not_onnx').
 * @param {Uint8Array} data
 * @param {string} file the graph's file name, for the message
 * @param {string|null} [field] the manifest field naming the file
 */
function checkNoExternalData(data, file, field = null) {
  let external;
  try {
    external = walk(data, 'model', 0, data.length, 0);
  } catch (error) {
    if (!(error instanceof Malformed)) throw error;
    throw new BundleError(`${file}: not a valid ONNX model (${error.message}); export the bundle again`,
      { code: 'not_onnx', field });
  }
  if (external) {
    throw new BundleError(`${file}: a tensor keeps its data in an external file; a bundle may not read anything `
      + 'outside itself, so graphs must hold all their weights (export the bundle again)', { code: 'external_data', field });
  }
}

/**
 * The model's bytes with its ir_version (ModelProto field 1) set to `version`; every other field unchanged.
 * Used only when onnxruntime-node refuses a graph for declaring a newer IR version than it knows.
 * @param {Uint8Array} data a model that passed checkNoExternalData
 * @param {number} version
 * @returns {Uint8Array}
 */
function withIrVersion(data, version) {
  const parts = [Uint8Array.from([0x08, ...encodeVarint(version)])];
  let pos = 0;
  while (pos < data.length) {
    const [key, afterKey] = varint(data, pos, data.length);
    const wire = Number(key & 7n);
    let next = afterKey;
    if (wire === 0) next = varint(data, afterKey, data.length)[1];
    else if (wire === 2) {
      const [length, at] = varint(data, afterKey, data.length);
      next = at + Number(length);
    } else next += wire === 1 ? 8 : 4;
    if (Number(key >> 3n) !== 1) parts.push(data.subarray(pos, next));
    pos = next;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeVarint(value) {
  const out = [];
  do {
    const byte = value & 0x7f;
    value = Math.floor(value / 128);
    out.push(byte | (value ? 0x80 : 0));
  } while (value);
  return out;
}

module.exports = { checkNoExternalData, withIrVersion, MAX_DEPTH };
