'use strict';
/**
 * A fused mode's loop: one graph call runs the whole decode. A port of runtime/model.py's _fused: when the step
 * graph takes no source mask (a constant with decoder_input false, as export_functions writes for the NMT
 * tutorial), the loop attends to every position it is given, so rows of equal source length run together, their
 * constants cut to that length (as step mode's runDecoder does), and groups that stop early are padded with
 * `pad` (the end id). Batches whose rows all have the full length run in one call, as before.
 */

const ort = require('onnxruntime-node');

const { takeRows, maskLengths } = require('./tensors');

/**
 * The loop's first output, cut to `steps` (the graph may run past them).
 * @returns {{data: ArrayLike<number>, dims: number[]}} (steps run, batch[, features])
 */
async function runOnce(session, feed, first, steps) {
  const maxSteps = new ort.Tensor('int64', BigInt64Array.from([BigInt(steps)]), []);
  const out = (await session.run({ ...feed, first_input: first, max_steps: maxSteps }))[session.outputNames[0]];
  const [run, ...rest] = out.dims;
  const taken = Math.min(run, steps);
  const size = rest.reduce((a, b) => a * b, 1);
  return { data: out.data.subarray(0, taken * size), dims: [taken, ...rest] };
}

/**
 * Run a fused mode's decoder on the encoded state.
 * @param {import('./model').Model} model
 * @param {string} mode a fused mode of the bundle
 * @param {Object<string, ort.Tensor>} state the encoder's state and constants, batch first
 * @param {ort.Tensor} first the first decoder input, (batch) ids or (batch, features) values
 * @param {number} steps the most output steps
 * @param {number} [pad] what rows of a group that stopped early hold past its last step (the end id)
 * @returns {Promise<{data: ArrayLike<number>, dims: number[]}>} (steps run, batch[, features]), steps run <= steps
 */
async function runFused(model, mode, state, first, steps, pad = 0) {
  const session = model.sessions.get(model.spec.modes.get(mode).decoder);
  const mask = model.unfedMask === null ? null : state[model.unfedMask];
  const lengths = mask === null ? null : maskLengths(mask, model.unfedMask);
  if (lengths === null || lengths.every((l) => l === mask.dims[1])) return runOnce(session, state, first, steps);
  const batch = lengths.length;
  const parts = [];
  for (const length of [...new Set(lengths)].sort((a, b) => a - b)) {
    const rows = lengths.map((_, i) => i).filter((i) => lengths[i] === length);
    const feed = {};
    for (const [name, value] of Object.entries(state)) {
      feed[name] = model.constantNames.has(name) ? takeRows(value, rows, length) : takeRows(value, rows);
    }
    parts.push({ rows, out: await runOnce(session, feed, takeRows(first, rows), steps) });
  }
  const run = Math.max(...parts.map((p) => p.out.dims[0]));
  const inner = parts[0].out.dims.slice(2);
  const size = inner.reduce((a, b) => a * b, 1);
  const data = new parts[0].out.data.constructor(run * batch * size);
  data.fill(data instanceof BigInt64Array ? BigInt(pad) : pad);
  for (const { rows, out } of parts) {
    for (let t = 0; t < out.dims[0]; t++) {
      rows.forEach((row, k) => data.set(out.data.subarray((t * rows.length + k) * size, (t * rows.length + k + 1) * size),
        (t * batch + row) * size));
    }
  }
  return { data, dims: [run, batch, ...inner] };
}

module.exports = { runFused };
