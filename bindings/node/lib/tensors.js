'use strict';
/** Row-wise operations on batch-first onnxruntime tensors, for grouping rows by source length. */

const ort = require('onnxruntime-node');

const { InputError } = require('./errors');

/** @param {number[]} dims @returns {ort.Tensor} float32 zeros of that shape */
const zeros = (dims) => new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);

/**
 * Rows of a batch-first tensor, with the time axis (axis 1) cut to `time` when given.
 * @param {ort.Tensor} tensor
 * @param {number[]} rows
 * @param {number} [time]
 * @returns {ort.Tensor}
 */
function takeRows(tensor, rows, time) {
  const dims = tensor.dims;
  const rowSize = dims.slice(1).reduce((a, b) => a * b, 1);
  const cut = time === undefined ? dims.slice(1) : [time, ...dims.slice(2)];
  const size = cut.reduce((a, b) => a * b, 1);
  const out = new tensor.data.constructor(rows.length * size);
  rows.forEach((row, k) => out.set(tensor.data.subarray(row * rowSize, row * rowSize + size), k * size));
  return new ort.Tensor(tensor.type, out, [rows.length, ...cut]);
}

/**
 * Write the rows of `part` into `full` at `rows` (whole rows: the shapes past the batch axis agree).
 * @param {ort.Tensor} full
 * @param {ort.Tensor} part
 * @param {number[]} rows
 */
function putRows(full, part, rows) {
  const fullRow = full.dims.slice(1).reduce((a, b) => a * b, 1);
  const partRow = part.dims.slice(1).reduce((a, b) => a * b, 1);
  rows.forEach((row, k) => full.data.set(part.data.subarray(k * partRow, (k + 1) * partRow), row * fullRow));
}

/** np.argmax over the last axis of (batch, width) values: the first maximum, or the first NaN. */
function argmaxRows(tensor) {
  const [batch, width] = tensor.dims;
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    const row = tensor.data.subarray(b * width, (b + 1) * width);
    let best = 0;
    for (let i = 0; i < width; i++) {
      if (Number.isNaN(row[i])) {
        best = i;
        break;
      }
      if (row[i] > row[best]) best = i;
    }
    out[b] = best;
  }
  return out;
}

/** Write a constant of time `part.dims[1]` into the first steps of `full`'s rows (the rest stays zero). */
function putPadded(full, part, rows) {
  const [, time, ...inner] = full.dims;
  const size = inner.reduce((a, b) => a * b, 1);
  const partTime = part.dims[1];
  rows.forEach((row, k) => full.data.set(part.data.subarray(k * partTime * size, (k + 1) * partTime * size),
    row * time * size));
}

/** Per-row source lengths of a mask that is 1 for a prefix of each row and 0 after it. */
function maskLengths(mask, name) {
  const [batch, time] = mask.dims;
  return Array.from({ length: batch }, (_, b) => {
    const row = mask.data.subarray(b * time, (b + 1) * time);
    let sum = 0;
    for (const v of row) sum += v;
    const length = Math.trunc(sum);
    if (!row.every((v, t) => v === (t < length ? 1 : 0))) {
      throw new InputError(`state ${JSON.stringify(name)}: this decoder takes no mask, so the runtime cuts each row to its `
        + 'length; the mask must be 1 for a prefix of each row and 0 after it');
    }
    return length;
  });
}

module.exports = { zeros, takeRows, putRows, putPadded, argmaxRows, maskLengths };
