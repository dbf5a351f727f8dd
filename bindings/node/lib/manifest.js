'use strict';
/**
 * manifest.json: a port of runtime/manifest.py for token seq2seq bundles. Every field is read and bounded
 * in the Python runtime's order, and every problem is a BundleError with the Python runtime's words.
 * Autoencoder bundles and real-valued sides are refused: this runtime decodes text.
 */

const { BundleError } = require('./errors');
const { Vocabulary } = require('./vocab');
const py = require('./py');

const FORMAT = 'seq2seq-edge/1';
const MAX_STEPS = 100000;
const MAX_SIZE = 65536;
const MAX_LAYERS = 64;
const MAX_ENTRIES = 256;
const MAX_RANK = 8;
const MAX_NAME = 256;
const FAMILIES = ['seq2seq', 'autoencoder'];
const CELLS = ['lstm', 'gru'];
const PADDINGS = ['lengths', 'mask', 'none'];
const FIRST_INPUTS = ['start_token', 'last_source_step', 'zeros'];
const DTYPES = ['int32', 'int64', 'float32'];
const STEP_MODE = 'step';
const STEP_STRATEGIES = ['greedy', 'sample', 'beam'];
const SHA256 = /^[0-9a-f]{64}$/;
const USE_PYTHON = 'the Node.js runtime decodes token seq2seq bundles (text in, text out); load this bundle with '
  + 'the Python runtime instead (seq2seq_edge.runtime.load, or `seq2seq-edge run`)';

/** Typed field access with error messages that name the field's path (runtime/manifest.py's _Reader). */
class Reader {
  /** @param {unknown} data @param {string} path */
  constructor(data, path) {
    if (!py.isDict(data)) throw new BundleError(`${path}: expected a JSON object, got ${py.typeName(data)}`);
    /** @type {Map<string, unknown>} */
    this.data = data;
    this.path = path;
  }

  /** @param {string} key @param {'str'|'int'|'list'|'dict'} kind */
  get(key, kind) {
    if (!this.data.has(key)) throw new BundleError(`${this.path}: field '${key}' is missing`);
    const value = this.data.get(key);
    if (py.typeName(value) !== kind) {
      throw new BundleError(`${this.path}: field '${key}' must be ${kind}, got ${py.typeName(value)}`);
    }
    return value;
  }

  /** The field, or null when it is absent or null. */
  optional(key, kind) {
    return this.data.get(key) == null ? null : this.get(key, kind);
  }

  bounded(key, low, high) {
    const value = this.get(key, 'int');
    if (!(low <= value && value <= high)) {
      throw new BundleError(`${this.path}: field '${key}' must be in [${low}, ${high}], got ${value}`);
    }
    return Number(value);
  }

  /** A tensor or file name: a non-empty string of at most MAX_NAME characters. */
  name(key) {
    const value = this.get(key, 'str');
    if (!(py.len(value) > 0 && py.len(value) <= MAX_NAME)) {
      throw new BundleError(`${this.path}: field '${key}' must be a name of 1 to ${MAX_NAME} characters`);
    }
    return value;
  }

  child(key) {
    return new Reader(this.get(key, 'dict'), `${this.path}.${key}`);
  }

  items(key, limit = MAX_ENTRIES) {
    const values = this.get(key, 'list');
    if (values.length > limit) {
      throw new BundleError(`${this.path}: field '${key}' has ${values.length} entries, more than ${limit}`);
    }
    return values.map((v, i) => new Reader(v, `${this.path}.${key}[${i}]`));
  }
}

function checkChoice(name, value, choices) {
  if (!choices.includes(value)) {
    throw new BundleError(`manifest.json: ${name} must be one of ${py.repr(choices)}, got ${py.repr(value)}`);
  }
}

/** str(v) in Python */
function pyStr(v) {
  return typeof v === 'string' ? v : py.repr(v);
}

function header(data) {
  const r = new Reader(data, 'manifest.json');
  const fmt = r.get('format', 'str');
  if (fmt !== FORMAT) {
    throw new BundleError(`manifest.json: format ${py.repr(fmt)} is not supported (this runtime reads `
      + `${py.repr(FORMAT)}); re-export the bundle with a matching seq2seq-edge version`);
  }
  return r;
}

function readShape(r) {
  const shape = r.get('shape', 'list');
  const ok = shape.length <= MAX_RANK && shape.every((d) => (py.isInt(d) && d >= 0 && d <= 2 ** 31)
    || (typeof d === 'string' && py.len(d) > 0 && py.len(d) <= MAX_NAME));
  if (!ok) {
    throw new BundleError(`${r.path}: shape must list at most ${MAX_RANK} sizes (integers) or axis names, `
      + `got ${py.repr(shape.slice(0, MAX_RANK + 1))}`);
  }
  return shape.map((d) => (typeof d === 'string' ? d : Number(d)));
}

function readGraph(r) {
  const tensors = (key) => r.items(key).map((t) => {
    const dtype = t.get('dtype', 'str');
    checkChoice(`${t.path}.dtype`, dtype, DTYPES);
    return { name: t.name('name'), dtype, shape: readShape(t) };
  });
  const sha = r.get('sha256', 'str');
  if (!SHA256.test(sha)) {
    throw new BundleError(`${r.path}: sha256 must be 64 lowercase hex digits, got ${py.repr(py.slice(sha, 0, 80))}`);
  }
  return { file: r.name('file'), sha256: sha, inputs: tensors('inputs'), outputs: tensors('outputs') };
}

function readGraphs(r) {
  const graphs = r.child('graphs');
  if (graphs.data.size > MAX_ENTRIES) {
    throw new BundleError(`manifest.json: at most ${MAX_ENTRIES} graphs, got ${graphs.data.size}`);
  }
  return new Map(Array.from(graphs.data.keys(), (key) => [key, readGraph(graphs.child(key))]));
}

function readState(r) {
  const spec = {
    name: r.name('name'), layer: r.bounded('layer', 0, MAX_LAYERS - 1), kind: r.get('kind', 'str'),
    size: r.bounded('size', 1, MAX_SIZE), output: r.name('output'), init: r.get('init', 'str'),
    encoderOutput: r.data.get('encoder_output') != null ? r.name('encoder_output') : null,
  };
  checkChoice(`${r.path}.kind`, spec.kind, ['h', 'c', 'attentional']);
  checkChoice(`${r.path}.init`, spec.init, ['encoder', 'zeros']);
  if (spec.init === 'encoder' && !spec.encoderOutput) {
    throw new BundleError(`${r.path}: init 'encoder' needs 'encoder_output'`);
  }
  return spec;
}

function readConstant(r) {
  const kind = r.get('kind', 'str');
  checkChoice(`${r.path}.kind`, kind, ['memory', 'keys', 'mask']);
  const size = kind === 'mask' ? null : r.bounded('size', 1, MAX_SIZE);
  if (kind === 'mask' && r.data.get('size') != null) {
    throw new BundleError(`${r.path}: a mask has no size (it is (batch, time)); set size to null`);
  }
  const fed = r.data.has('decoder_input') ? r.data.get('decoder_input') : true;
  if (typeof fed !== 'boolean' || (!fed && kind !== 'mask')) {
    throw new BundleError(`${r.path}.decoder_input: true or false, and false only for the mask (every step takes `
      + `the memory and keys), got ${py.repr(fed)}`);
  }
  return { name: r.name('name'), kind, encoderOutput: r.name('encoder_output'), size, decoderInput: fed };
}

function readUnits(r, key) {
  const units = r.get(key, 'list');
  if (units.length > MAX_LAYERS || !units.every((u) => py.isInt(u) && u >= 1 && u <= MAX_SIZE)) {
    throw new BundleError(`${r.path}: ${key} must list at most ${MAX_LAYERS} integers in [1, ${MAX_SIZE}], `
      + `got ${py.repr(units.slice(0, MAX_LAYERS + 1))}`);
  }
  return units.map(Number);
}

function readSide(r, side) {
  const kind = r.get('kind', 'str');
  if (kind === 'tokens') return { kind, vocabulary: Vocabulary.fromDict(r.get('vocabulary', 'dict')) };
  if (kind === 'features') throw new BundleError(`manifest.json: the ${side} is real-valued features; ${USE_PYTHON}`);
  throw new BundleError(`${r.path}: kind must be 'tokens' or 'features', got ${py.repr(kind)}`);
}

function readIO(r) {
  const known = ['source', 'source_length', 'step_input', 'step_output', 'padding', 'attention'];
  const unknown = py.sorted(Array.from(r.data.keys()).filter((k) => !known.includes(k)));
  if (unknown.length) throw new BundleError(`${r.path}: unknown field(s) ${py.repr(unknown)}`);
  const io = {
    source: r.name('source'), stepInput: r.name('step_input'), stepOutput: r.name('step_output'),
    sourceLength: r.data.get('source_length') != null ? r.name('source_length') : null,
    padding: r.optional('padding', 'str'),
    attention: r.data.get('attention') != null ? r.name('attention') : null,
  };
  if (io.padding !== null && !PADDINGS.includes(io.padding)) {
    throw new BundleError(`manifest.json: io.padding must be one of ${py.repr(PADDINGS)} or null, `
      + `got ${py.repr(io.padding)}`);
  }
  if ((io.padding === 'lengths') !== (io.sourceLength !== null)) {
    throw new BundleError("manifest.json: io.source_length is set exactly when io.padding is 'lengths'");
  }
  return io;
}

function readModes(r) {
  const modes = r.child('modes');
  if (modes.data.size > MAX_ENTRIES) throw new BundleError(`${modes.path}: at most ${MAX_ENTRIES} modes`);
  const out = new Map();
  for (const mode of modes.data.keys()) {
    const graphs = modes.child(mode);
    const roles = Array.from(graphs.data.keys());
    if (roles.length !== 2 || !roles.includes('encoder') || !roles.includes('decoder')) {
      throw new BundleError(`manifest.json: decode.modes.${mode} must name an 'encoder' and a 'decoder' graph`);
    }
    out.set(mode, { encoder: graphs.name('encoder'), decoder: graphs.name('decoder') });
  }
  return out;
}

/** The decode strategies a bundle with these modes can run: every one with the step graph, greedy alone without. */
function strategiesFor(modes) {
  return modes.has(STEP_MODE) ? STEP_STRATEGIES : ['greedy'];
}

function readStrategies(r) {
  if (r.data.get('strategies') == null) return null;
  const names = r.data.get('strategies');
  if (!Array.isArray(names) || names.length > STEP_STRATEGIES.length || names.some((n) => !STEP_STRATEGIES.includes(n))) {
    throw new BundleError(`manifest.json: decode.strategies must be a list drawn from ${py.repr(STEP_STRATEGIES)}, `
      + `got ${py.slice(pyStr(names), 0, 80)}`);
  }
  return names;
}

function readRecords(r) {
  return {
    task: r.optional('task', 'str'), parity: r.optional('parity', 'dict') || new Map(),
    versions: r.optional('versions', 'dict') || new Map(), data: r.optional('data', 'dict'),
  };
}

/** Manifest.__post_init__, the checks of one field against another, for what this runtime reads. */
function checkManifest(m) {
  const names = m.constants.map((c) => c.name);
  const stateNames = new Set(m.state.map((s) => s.name));
  if (new Set(names).size !== names.length || names.some((n) => stateNames.has(n))) {
    throw new BundleError('manifest.json: constant names must be unique and differ from the state names');
  }
  const masks = m.constants.filter((c) => c.kind === 'mask');
  if ((m.io.attention !== null || m.constants.length) && masks.length !== 1) {
    throw new BundleError("manifest.json: an attention decoder needs exactly one constant of kind 'mask' "
      + `(found ${masks.length})`);
  }
  if (!m.modes.size) {
    throw new BundleError('manifest.json: decode.modes is empty; a bundle needs at least one decode mode');
  }
  const step = m.modes.get(STEP_MODE);
  if (step && !(step.encoder === 'encoder' && step.decoder === 'decoder_step')) {
    throw new BundleError("manifest.json: decode.modes.step must be {'encoder': 'encoder', 'decoder': "
      + "'decoder_step'}");
  }
  for (const [mode, graphs] of m.modes) {
    for (const role of ['encoder', 'decoder']) {
      if (!m.graphs.has(graphs[role])) {
        throw new BundleError(`manifest.json: decode.modes.${mode}.${role} names graph ${py.repr(graphs[role])}, `
          + 'which is not in graphs');
      }
    }
  }
  checkChoice('decode.default_mode', m.defaultMode, Array.from(m.modes.keys()));
  checkChoice('cell', m.cell, CELLS);
  checkChoice('decode.first_input', m.firstInput, FIRST_INPUTS);
  checkDecodeFields(m);
}

/** The graphs, strategies, limits and special tokens that decoding needs (the rest of __post_init__). */
function checkDecodeFields(m) {
  for (const required of (m.hasStep ? ['encoder', 'decoder_step'] : [])) {
    if (!m.graphs.has(required)) throw new BundleError(`manifest.json: graphs.${required} is missing`);
  }
  if (Array.from(m.modes).some(([mode, g]) => mode !== STEP_MODE && g.decoder === 'decoder_step')) {
    throw new BundleError("manifest.json: only decode mode 'step' may run graph 'decoder_step'");
  }
  const allowed = strategiesFor(m.modes);
  if (m.strategies === null) m.strategies = allowed;
  else if (py.repr(m.strategies) !== py.repr(allowed)) {
    throw new BundleError(`manifest.json: decode.strategies ${py.repr(m.strategies)} do not match the graphs: `
      + `${m.hasStep ? 'with' : 'without'} the step graph the bundle runs ${py.repr(allowed)}`);
  }
  if (!(py.isInt(m.maxSteps) && m.maxSteps >= 1 && m.maxSteps <= MAX_STEPS)) {
    throw new BundleError(`manifest.json: decode.max_steps must be an integer in [1, ${MAX_STEPS}], `
      + `got ${py.repr(m.maxSteps)}`);
  }
  m.maxSteps = Number(m.maxSteps);
  if (m.target.vocabulary.endId === null) {
    throw new BundleError('manifest.json: target.vocabulary.end_id is null; a token target needs an end token');
  }
  if (m.modes.size > MAX_ENTRIES || m.state.length > MAX_ENTRIES) {
    throw new BundleError(`manifest.json: at most ${MAX_ENTRIES} decode modes and state tensors`);
  }
  if (m.firstInput === 'start_token' && m.target.vocabulary.startId === null) {
    throw new BundleError("manifest.json: first_input 'start_token' needs a token target with a start_id");
  }
  if (m.firstInput === 'last_source_step') {
    throw new BundleError("manifest.json: first_input 'last_source_step' needs feature source and target "
      + 'of the same width');
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
 *   constants: ConstantSpec[], hasStep: boolean, stepMode: string}} Manifest
 */

/**
 * Parse manifest.json content (as read by ./pyjson.js) in the Python runtime's order.
 * @param {unknown} data
 * @returns {Manifest}
 * @throws {BundleError}
 */
function parseManifest(data) {
  const family = header(data).get('family', 'str');
  checkChoice('family', family, FAMILIES);
  if (family !== 'seq2seq') throw new BundleError(`manifest.json: family ${py.repr(family)}: ${USE_PYTHON}`);
  const r = header(data);
  const model = r.child('model');
  const decode = r.child('decode');
  const m = {
    family: r.get('family', 'str'), cell: model.get('cell', 'str'),
    encoderUnits: readUnits(model, 'encoder_units'), decoderUnits: readUnits(model, 'decoder_units'),
    graphs: readGraphs(r), state: r.items('state').map(readState),
    source: readSide(r.child('source'), 'source'), target: readSide(r.child('target'), 'target'),
    io: readIO(r.child('io')), maxSteps: decode.get('max_steps', 'int'), firstInput: decode.get('first_input', 'str'),
    modes: readModes(decode), defaultMode: decode.get('default_mode', 'str'), strategies: readStrategies(decode),
    constants: py.truthy(r.data.get('constants')) ? r.items('constants').map(readConstant) : [],
    ...readRecords(r),
  };
  m.hasStep = m.modes.has(STEP_MODE);
  checkManifest(m);
  m.stepMode = m.hasStep ? STEP_MODE : m.defaultMode; // the mode whose encoder carries the contract
  return m;
}

module.exports = { parseManifest, FORMAT, STEP_MODE, MAX_STEPS };
