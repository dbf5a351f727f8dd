'use strict';
/**
 * manifest.json, as runtime/manifest_reader.py reads it: manifest.schema.json (through ./schema.js), then the
 * rules between fields in the Python runtime's order, so that both runtimes refuse a manifest with the same
 * code and field. Then what this runtime reads: autoencoder bundles and real-valued sides are refused
 * (code 'unsupported'), since this runtime decodes text.
 */

const { BundleError } = require('./errors');
const { at, show, validate, byCodePoint } = require('./schema');
const { Vocabulary, checkVocabulary } = require('./vocab');

const WHERE = 'manifest.json';
const FORMAT = at('#/properties/format/const');
const MAX_STEPS = at('#/$defs/decode/properties/max_steps/maximum');
const STEP_MODE = 'step';
const STEP_STRATEGIES = at('#/$defs/decode/properties/strategies/items/enum');
const USE_PYTHON = 'the Node.js runtime decodes token seq2seq bundles (text in, text out); load this bundle with '
  + 'the Python runtime instead (seq2seq_edge.runtime.load, or `seq2seq-edge run`)';

const fail = (code, field, text) => new BundleError(`${WHERE}: ${field} ${text}`, { code, field });
const absent = (value) => value === undefined || value === null;

/** The decode strategies a bundle with these modes can run: every one with the step graph, greedy alone without. */
function strategiesFor(modes) {
  return STEP_MODE in modes ? STEP_STRATEGIES : ['greedy'];
}

/** A feature side's mean and std hold one value per feature (runtime/manifest.py check_features). */
function checkFeatures(side, field) {
  for (const key of ['mean', 'std']) {
    if (side[key].length !== side.features) {
      throw fail('features', `${field}.${key}`, `holds ${side[key].length} values but the side has ${side.features} `
        + 'features: one value per feature');
    }
  }
}

function checkPadding(data) {
  const { padding = null, source_length: length = null } = data.io;
  if (data.source.kind === 'tokens' && padding === null) {
    throw fail('padding', 'io.padding', "is null, but a token source must say how its padding is handled: 'lengths', "
      + "'mask' or 'none'");
  }
  if ((padding === 'lengths') !== (length !== null)) {
    throw fail('padding', 'io.source_length', `is ${show(length)} while io.padding is ${show(padding)}; it names the `
      + "lengths input when, and only when, io.padding is 'lengths'");
  }
}

/** State names, state outputs and constant names are unique (a constant may not share a state's name). */
function checkNames(data) {
  const constants = data.constants || [];
  const passes = [['state', 'name', data.state, new Set()], ['state', 'output', data.state, new Set()],
    ['constants', 'name', constants, new Set(data.state.map((s) => s.name))]];
  for (const [part, key, entries, taken] of passes) {
    entries.forEach((entry, i) => {
      if (taken.has(entry[key])) {
        throw fail('duplicate', `${part}[${i}].${key}`, `${show(entry[key])} is used twice; state names, state `
          + 'outputs and constant names must all differ');
      }
      taken.add(entry[key]);
    });
  }
}

function checkMask(data) {
  const constants = data.constants || [];
  const masks = constants.filter((c) => c.kind === 'mask').length;
  if ((!absent(data.io.attention) || constants.length) && masks !== 1) {
    throw fail('mask', 'constants', `hold ${masks} constants of kind 'mask'; an attention decoder needs exactly one`);
  }
}

function checkModes(data) {
  const { graphs } = data;
  const { modes } = data.decode;
  for (const mode of Object.keys(modes).sort(byCodePoint)) {
    for (const role of ['encoder', 'decoder']) {
      const graph = modes[mode][role];
      const field = `decode.modes.${mode}.${role}`;
      if (!Object.prototype.hasOwnProperty.call(graphs, graph)) {
        throw fail('mode_graph', field, `names graph ${show(graph)}, but graphs holds only `
          + `${show(Object.keys(graphs).sort(byCodePoint))}`);
      }
      if (role === 'decoder' && mode !== STEP_MODE && graph === 'decoder_step') {
        throw fail('mode_graph', field, "names 'decoder_step', which only decode mode 'step' may run");
      }
    }
  }
  const fallback = data.decode.default_mode;
  if (!Object.prototype.hasOwnProperty.call(modes, fallback)) {
    throw fail('default_mode', 'decode.default_mode', `must be one of the modes ${show(Object.keys(modes))}, not `
      + `${show(fallback)}`);
  }
}

function checkDecode(data) {
  const { decode, source, target } = data;
  const allowed = strategiesFor(decode.modes);
  const given = decode.strategies;
  if (!absent(given) && JSON.stringify(given) !== JSON.stringify(allowed)) {
    throw fail('strategies', 'decode.strategies', `are ${show(given)}, but ${STEP_MODE in decode.modes ? 'with' : 'without'} `
      + `the step graph the bundle runs ${show(allowed)}`);
  }
  if (target.kind === 'tokens' && absent(target.vocabulary.end_id)) {
    throw fail('end_token', 'target.vocabulary.end_id', 'is null; a token target needs an end token');
  }
  const first = decode.first_input;
  if (first === 'start_token' && (target.kind !== 'tokens' || absent(target.vocabulary.start_id))) {
    throw fail('first_input', 'decode.first_input', "is 'start_token', but the target has no start token");
  }
  if (first === 'last_source_step' && !(source.kind === 'features' && target.kind === 'features'
      && source.features === target.features)) {
    throw fail('first_input', 'decode.first_input', "is 'last_source_step', which needs feature source and target "
      + 'of the same width');
  }
  if (typeof first === 'object' && first !== null) checkFirstInputRule(first, source, target);
}

/** A {"rule": "source_step"} first input: feature sides, indices within the source, one per target feature. */
function checkFirstInputRule(rule, source, target) {
  if (!(source.kind === 'features' && target.kind === 'features')) {
    throw fail('first_input', 'decode.first_input', 'is a source_step rule, which needs feature source and target');
  }
  rule.features.forEach((index, i) => {
    if (index >= source.features) {
      throw fail('first_input', `decode.first_input.features[${i}]`, `is ${show(index)}, but the source has `
        + `${source.features} features (indices 0 to ${source.features - 1})`);
    }
  });
  if (rule.features.length !== target.features) {
    throw fail('first_input', 'decode.first_input.features', `holds ${rule.features.length} indices but the target `
      + `has ${target.features} features: one source index per target feature`);
  }
}

/** The rules between fields, in runtime/manifest_reader.py's order, on a manifest the schema accepted. */
function checkRules(data) {
  const autoencoder = data.family === 'autoencoder';
  for (const side of autoencoder ? ['source'] : ['source', 'target']) {
    if (data[side].kind === 'tokens') checkVocabulary(data[side].vocabulary, WHERE, `${side}.vocabulary`);
    else checkFeatures(data[side], side);
  }
  if (autoencoder) return;
  checkPadding(data);
  checkNames(data);
  checkMask(data);
  checkModes(data);
  checkDecode(data);
}

/** What this runtime decodes: seq2seq bundles of tokens to tokens, or of features to features (forecasts). */
function checkSupported(data) {
  if (data.family !== 'seq2seq') {
    throw new BundleError(`${WHERE}: family ${show(data.family)}: ${USE_PYTHON}`, { code: 'unsupported', field: 'family' });
  }
  if (data.source.kind === 'features' && data.target.kind === 'features') return;
  for (const side of ['source', 'target']) {
    if (data[side].kind !== 'tokens') {
      throw new BundleError(`${WHERE}: the ${side} is real-valued features; ${USE_PYTHON}`,
        { code: 'unsupported', field: `${side}.kind` });
    }
  }
}

/**
 * @typedef {{name: string, dtype: string, shape: (number|string)[]}} TensorSpec
 * @typedef {{file: string, sha256: string, inputs: TensorSpec[], outputs: TensorSpec[]}} GraphSpec
 * @typedef {{name: string, layer: number, kind: string, size: number, output: string, init: string,
 *   encoderOutput: string|null}} StateSpec
 * @typedef {{name: string, kind: string, encoderOutput: string, size: number|null, decoderInput: boolean}} ConstantSpec
 * @typedef {{family: string, cell: string, encoderUnits: number[], decoderUnits: number[],
 *   graphs: Map<string, GraphSpec>, state: StateSpec[], source: {kind: string, vocabulary: Vocabulary},
 *   target: {kind: string, vocabulary: Vocabulary}, io: Object, maxSteps: number, firstInput: string,
 *   modes: Map<string, {encoder: string, decoder: string}>, defaultMode: string, strategies: string[],
 *   constants: ConstantSpec[], hasStep: boolean, stepMode: string, raw: object}} Manifest
 */

const tensor = (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape });
const graph = (g) => ({ file: g.file, sha256: g.sha256, inputs: g.inputs.map(tensor), outputs: g.outputs.map(tensor) });

/** A token side (its vocabulary) or a feature side (its width and scaling). */
const side = (d) => (d.kind === 'tokens' ? { kind: 'tokens', vocabulary: Vocabulary.fromDict(d.vocabulary) }
  : { kind: 'features', features: d.features, mean: d.mean, std: d.std });

function build(data) {
  const { io, decode } = data;
  const orNull = (value) => (value === undefined ? null : value);
  const modes = new Map(Object.entries(decode.modes).map(([mode, g]) => [mode, { encoder: g.encoder, decoder: g.decoder }]));
  const m = {
    family: data.family, cell: data.model.cell, encoderUnits: data.model.encoder_units,
    decoderUnits: data.model.decoder_units, graphs: new Map(Object.entries(data.graphs).map(([key, g]) => [key, graph(g)])),
    state: data.state.map((s) => ({
      name: s.name, layer: s.layer, kind: s.kind, size: s.size, output: s.output, init: s.init,
      encoderOutput: orNull(s.encoder_output),
    })),
    source: side(data.source), target: side(data.target),
    io: {
      source: io.source, stepInput: io.step_input, stepOutput: io.step_output, sourceLength: orNull(io.source_length),
      padding: orNull(io.padding), attention: orNull(io.attention),
    },
    maxSteps: decode.max_steps, firstInput: decode.first_input, modes, defaultMode: decode.default_mode,
    strategies: absent(decode.strategies) ? strategiesFor(decode.modes) : decode.strategies,
    constants: (data.constants || []).map((c) => ({
      name: c.name, kind: c.kind, encoderOutput: c.encoder_output, size: orNull(c.size),
      decoderInput: c.decoder_input === undefined ? true : c.decoder_input,
    })),
    task: orNull(data.task), raw: data,
  };
  m.hasStep = modes.has(STEP_MODE);
  m.stepMode = m.hasStep ? STEP_MODE : m.defaultMode; // the mode whose encoder carries the contract
  return m;
}

/**
 * Parse manifest.json content (JSON.parse's output): the schema, the rules, what this runtime reads.
 * @param {unknown} data
 * @returns {Manifest}
 * @throws {BundleError} with a code and a field
 */
function parseManifest(data) {
  validate(data);
  checkRules(data);
  checkSupported(data);
  return build(data);
}

module.exports = { parseManifest, strategiesFor, FORMAT, STEP_MODE, MAX_STEPS };
