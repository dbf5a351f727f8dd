'use strict';
/**
 * Real-valued bundles (forecasts): raw windows in, raw predictions out, the decoder started as the manifest's
 * decode.first_input says. A port of runtime/model.py's generate for feature bundles (runtime/inputs.py's
 * check_features, normalise and source_step_features).
 */

const ort = require('onnxruntime-node');

const { InputError } = require('./errors');
const { runFused } = require('./fused');

const MAX_SOURCE_STEPS = 4096; // runtime/inputs.py's cap on one row's source, in tokens or time steps

/** InputError when one row's source is longer than MAX_SOURCE_STEPS. */
function checkSourceLength(steps, what, unit = 'steps') {
  if (steps > MAX_SOURCE_STEPS) {
    throw new InputError(`${what} has ${steps} ${unit}; a source has at most ${MAX_SOURCE_STEPS} (MAX_SOURCE_STEPS): `
      + 'split it into shorter sources');
  }
}

/**
 * Raw values (batch, time, features) as nested arrays, checked: equal lengths, `features` finite numbers a step.
 * @returns {{data: Float32Array, batch: number, time: number}}
 */
function checkWindows(windows, features, name = 'source') {
  if (!Array.isArray(windows)) throw new InputError(`${name}: expected an array (batch, time, features) of numbers`);
  if (windows.length === 0) return { data: new Float32Array(0), batch: 0, time: 0 };
  const time = Array.isArray(windows[0]) ? windows[0].length : -1;
  if (time === 0) throw new InputError(`${name}: empty input; pass at least one step of each sequence`);
  checkSourceLength(time, `${name}: each row`);
  const data = new Float32Array(windows.length * time * features);
  windows.forEach((row, b) => {
    if (!Array.isArray(row) || row.length !== time) {
      throw new InputError(`${name}: expected shape (batch, time, features); row ${b} is not ${time} steps long`);
    }
    row.forEach((step, t) => {
      if (!Array.isArray(step) || step.length !== features) {
        throw new InputError(`${name}: the model takes ${features} features, got ${Array.isArray(step) ? step.length
          : typeof step} at row ${b}, step ${t}`);
      }
      step.forEach((v, f) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) {
          throw new InputError(`${name}: contains a value that is not a finite number (first at index `
            + `(${b}, ${t}, ${f})); clean or impute it first`);
        }
        data[(b * time + t) * features + f] = v;
      });
    });
  });
  return { data, batch: windows.length, time };
}

/** (x - mean) / std per feature, in float32, as runtime/inputs.py's normalise; in place. */
function normalise(data, mean, std) {
  const m = Float32Array.from(mean);
  const s = Float32Array.from(std);
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(Math.fround(data[i] - m[i % m.length]) / s[i % s.length]);
  return data;
}

/** The raw first decoder input (batch * width): given by hand, or read from the source as the manifest says. */
function firstRaw(spec, source, given, width) {
  const { data, batch, time } = source;
  const F = spec.source.features;
  const out = new Float32Array(batch * width);
  if (given !== undefined && given !== null) {
    const rows = Array.isArray(given) ? given.map((r) => (Array.isArray(r) && r.length === 1 && Array.isArray(r[0])
      ? r[0] : r)) : given; // (batch, 1, features) as Keras decoders take it
    const checked = checkWindows(Array.isArray(rows) ? rows.map((r) => [r]) : rows, width, 'first_input');
    if (checked.batch !== batch) {
      throw new InputError(`first_input: batch ${checked.batch} does not match the source's ${batch}`);
    }
    return checked.data;
  }
  const rule = spec.firstInput;
  let indices = null;
  let step = time - 1;
  if (rule === 'last_source_step') indices = Array.from({ length: F }, (_, i) => i);
  else if (rule && typeof rule === 'object' && rule.rule === 'source_step') {
    indices = rule.features;
    step = time + rule.step; // step -1: the last
  }
  if (indices === null) return out; // 'zeros'
  for (let b = 0; b < batch; b++) {
    indices.forEach((f, k) => { out[b * width + k] = data[(b * time + step) * F + f]; });
  }
  return out;
}

/**
 * Continue raw windows for `steps`: one array (steps) of arrays (features) a row, in the data's units.
 * @param {import('./model').Model} model
 */
async function generateFeatures(model, windows, { mode, maxSteps, firstInput } = {}) {
  const m = model.spec;
  mode = model.checkMode(mode);
  const steps = model.checkMaxSteps(maxSteps);
  const width = m.target.features;
  const source = checkWindows(windows, m.source.features);
  const raw = firstRaw(m, source, firstInput, width);
  if (source.batch === 0) return [];
  const { batch, time } = source;
  const x = normalise(source.data, m.source.mean, m.source.std);
  const encoder = model.sessions.get(m.modes.get(mode).encoder);
  const state = await model.encodeFeed(encoder, { [m.io.source]: new ort.Tensor('float32', x, [batch, time,
    m.source.features]) }, batch);
  const first = normalise(raw, m.target.mean, m.target.std);
  const out = new Float32Array(steps * batch * width); // (steps, batch, features), normalised
  if (mode !== 'step') {
    const predictions = await runFused(model, mode, state, new ort.Tensor('float32', first, [batch, width]), steps);
    out.set(predictions.data.subarray(0, out.length)); // (steps run, batch, features)
  } else {
    let current = state;
    let y = first;
    for (let t = 0; t < steps; t++) {
      const values = await model.runDecoder({ ...current, [m.io.stepInput]: new ort.Tensor('float32', y, [batch, width]) });
      const next = {};
      m.state.forEach((s) => { next[s.name] = values[s.output]; });
      for (const name of model.constantNames) next[name] = current[name];
      current = next;
      y = Float32Array.from(values[m.io.stepOutput].data);
      out.set(y, t * batch * width);
    }
  }
  const { mean, std } = m.target;
  return Array.from({ length: batch }, (_, b) => Array.from({ length: steps }, (_, t) => Array.from(
    { length: width }, (_, f) => Math.fround(Math.fround(out[(t * batch + b) * width + f] * Math.fround(std[f]))
      + Math.fround(mean[f])))));
}

module.exports = { generateFeatures, checkWindows, normalise, checkSourceLength, MAX_SOURCE_STEPS };
