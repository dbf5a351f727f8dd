'use strict';
/**
 * Open a bundle directory: read the manifest, verify every file, start the sessions. A port of
 * runtime/bundle.py for token seq2seq bundles, check by check and message by message.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');

const { BundleError, InputError } = require('./errors');
const { parseManifest } = require('./manifest');
const { checkNoExternalData, withIrVersion } = require('./onnx_scan');
const { SCHEMA, readJson, show, byCodePoint } = require('./schema');

const MANIFEST = 'manifest.json';
const MAX_MANIFEST_BYTES = SCHEMA['x-limits'].max_bytes;
const LOOP_INPUT = 'first_input';
const LOOP_STEPS = 'max_steps';
const LOOP_TOKENS = 'tokens';
const LOOP_PREDICTIONS = 'predictions';
// onnxruntime-node's type names -> the ONNX type string the Python runtime would print
const ORT_TYPES = { float64: 'double', float32: 'float', int32: 'int32', int64: 'int64' };
const OUR_DTYPES = new Set(['int32', 'int64', 'float32']);

function stat(file) {
  try {
    return fs.statSync(file);
  } catch {
    return null; // missing, unreadable or not a valid path: Python's is_dir()/is_file() say False
  }
}

// The largest graph a bundle may hold (protobuf's 2 GiB), checked before a byte is read, as in Python.
const MAX_GRAPH_BYTES = 2 ** 31;

/** Whether anything (a dangling link too) is at `file`. */
function lexists(file) {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/** A file name for a message: at most 80 characters. */
function short(name) {
  return name.length <= 80 ? name : `${name.slice(0, 77)}...`;
}

/** Refuse a symbolic link or anything but a regular file inside a bundle, with Python's message. */
function checkPlainFile(file, name, field) {
  const info = fs.lstatSync(file);
  if (info.isSymbolicLink() || !info.isFile()) {
    const kind = info.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';
    throw new BundleError(`${short(name)} in the bundle is ${kind}; a bundle holds its files as plain files `
      + '(copy it with `cp -rL`, or export it again)', { code: 'not_a_file', field });
  }
  return info;
}

/**
 * Read and parse dir/manifest.json.
 * @param {string} dir
 * @returns {import('./manifest').Manifest}
 */
function readManifest(dir) {
  if (!stat(dir)?.isDirectory()) {
    throw new BundleError(`no bundle at ${JSON.stringify(dir)}: expected a directory holding ${MANIFEST} `
      + '(write one with `seq2seq-edge export RUN_DIR --out BUNDLE`)', { code: 'no_bundle' });
  }
  const file = path.join(dir, MANIFEST);
  if (lexists(file)) checkPlainFile(file, MANIFEST, null);
  const info = stat(file);
  if (!info?.isFile()) {
    throw new BundleError(`${JSON.stringify(dir)} has no ${MANIFEST}; it is not a seq2seq-edge bundle, or it is `
      + 'incomplete: export it again', { code: 'no_manifest' });
  }
  if (info.size > MAX_MANIFEST_BYTES) {
    throw new BundleError(`${file}: ${info.size} bytes, more than a manifest may hold (${MAX_MANIFEST_BYTES}); `
      + 'it is not a seq2seq-edge manifest', { code: 'too_big' });
  }
  return manifestFromBytes(fs.readFileSync(file), file);
}

/**
 * Parse and check a manifest's bytes (also what the browser demo calls on the manifest it fetched).
 * @param {Uint8Array} bytes
 * @param {string} file the manifest's name in messages
 * @returns {import('./manifest').Manifest}
 */
function manifestFromBytes(bytes, file) {
  return parseManifest(readJson(bytes, file));
}

/** The most onnxruntime threads a session may ask for: 4 per core, as the Python runtime allows. */
function maxThreads() {
  if (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) return 4 * navigator.hardwareConcurrency;
  const os = require('node:os'); // here, not at the top: the browser demo serves this module without node:os
  return 4 * (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/** @returns {import('onnxruntime-node').InferenceSession.SessionOptions} */
function sessionOptions(threads) {
  if (!(Number.isInteger(threads) && threads >= 1)) {
    throw new InputError(`threads must be a positive integer, got ${String(threads)}`);
  }
  if (threads > maxThreads()) {
    throw new InputError(`threads must be at most ${maxThreads()} (4 per core of this machine), got ${threads}`);
  }
  return {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
    logSeverityLevel: 4, // onnxruntime's own log lines: a failure is reported once, as an error we raise
  };
}

/**
 * An onnxruntime session on verified bytes. A graph that declares a newer ONNX IR version than this
 * onnxruntime reads is given the newest it reads (the bytes otherwise unchanged): bundles exported before
 * export pinned IR 8 declare onnx's newest (14) in their fused loops, while using nothing past their opset.
 */
async function createSession(data, file, options, field) {
  try {
    try {
      return await ort.InferenceSession.create(data, options);
    } catch (error) {
      const ir = /Unsupported model IR version: (\d+), max supported IR version: (\d+)/.exec(String(error.message));
      if (!ir || Number(ir[2]) >= Number(ir[1])) throw error;
      return await ort.InferenceSession.create(withIrVersion(data, Number(ir[2])), options);
    }
  } catch (error) {
    throw new BundleError(`${file}: onnxruntime cannot load it (${error.message}); export the bundle again`,
      { code: 'onnxruntime', field });
  }
}

/**
 * One graph's session from its bytes, after the checks every runtime makes first: a plain file name, the
 * bytes the manifest hashed, no external data (onnxruntime would resolve its paths), then the interface.
 * @param {string} key the graph's name in the manifest
 * @param {object} spec the manifest's entry for the graph
 * @param {(spec: object) => Promise<Uint8Array>} read the graph's bytes (a folder, or fetch in the browser)
 * @param {(bytes: Uint8Array) => Promise<string>} sha256 hex digest
 * @param {object} options onnxruntime session options
 */
async function openGraph(key, spec, read, sha256, options) {
  const where = `graphs.${key}`;
  if (spec.file.includes('/') || spec.file === '.') { // Python: Path(file).name != file
    throw new BundleError(`manifest.json: graph file ${JSON.stringify(spec.file)} must be a plain file name inside `
      + 'the bundle', { code: 'graph_path', field: `${where}.file` });
  }
  const data = await read(spec, `${where}.file`);
  const actual = await sha256(data);
  if (actual !== spec.sha256) {
    throw new BundleError(`${spec.file}: sha256 ${actual.slice(0, 16)}... does not match the manifest's `
      + `${spec.sha256.slice(0, 16)}...; the file was changed or corrupted after export: export again`,
    { code: 'hash_mismatch', field: `${where}.sha256` });
  }
  checkNoExternalData(data, spec.file, `${where}.file`);
  const session = await createSession(data, spec.file, options, `${where}.file`);
  try {
    checkInterface(key, spec, session);
  } catch (error) {
    await session.release();
    throw error;
  }
  return session;
}

/**
 * Every graph's verified session, in the order of their names, then the contract between them (sessions
 * released on any failure).
 * @returns {Promise<Map<string, object>>}
 */
async function openGraphs(manifest, read, sha256, options) {
  const sessions = new Map();
  try {
    for (const key of Array.from(manifest.graphs.keys()).sort(byCodePoint)) {
      sessions.set(key, await openGraph(key, manifest.graphs.get(key), read, sha256, options));
    }
    checkContract(manifest);
  } catch (error) {
    await Promise.all(Array.from(sessions.values(), (s) => s.release()));
    throw error;
  }
  return sessions;
}

/** The graph's own names, dtypes and shapes must be the manifest's (codes graph_io, graph_dtype, graph_shape). */
function checkInterface(key, spec, session) {
  for (const [kind, declared, actual] of [['input', spec.inputs, session.inputMetadata],
    ['output', spec.outputs, session.outputMetadata]]) {
    const found = new Map(actual.map((a) => [a.name, a]));
    const want = declared.map((t) => t.name);
    if (!sameSet(new Set(found.keys()), new Set(want))) {
      throw new BundleError(`${spec.file}: the graph's ${kind}s ${show([...found.keys()].sort(byCodePoint))} are not `
        + `the manifest's ${show([...want].sort(byCodePoint))}; the manifest belongs to another bundle`,
      { code: 'graph_io', field: `graphs.${key}.${kind}s` });
    }
    declared.forEach((t, i) => checkTensor(spec.file, t, found.get(t.name), `graphs.${key}.${kind}s[${i}]`));
  }
}

function checkTensor(file, declared, actual, field) {
  const dtype = !actual.isTensor ? 'a non-tensor value'
    : OUR_DTYPES.has(actual.type) ? actual.type : `tensor(${ORT_TYPES[actual.type] || actual.type})`;
  if (dtype !== declared.dtype) {
    throw new BundleError(`${file}: tensor ${JSON.stringify(declared.name)} is ${dtype} in the graph but `
      + `${declared.dtype} in the manifest`, { code: 'graph_dtype', field: `${field}.dtype` });
  }
  const shape = actual.shape.map((a) => (a === '' ? null : a)); // an unnamed dynamic axis
  const same = shape.length === declared.shape.length && declared.shape.every((d, i) => (
    typeof d === 'number' ? d === shape[i] : typeof shape[i] !== 'number'));
  if (!same) {
    throw new BundleError(`${file}: tensor ${JSON.stringify(declared.name)} has shape ${show(shape)} in the graph `
      + `but ${show(declared.shape)} in the manifest`, { code: 'graph_shape', field: `${field}.shape` });
  }
}

// The contract between the graphs, the state and the sides (runtime/bundle.py's, in its order): each tensor the
// runtime feeds or reads is found by name in a graph's declared inputs or outputs, with its field path, and held
// to the dtype and shape the contract needs. Any disagreement is code 'contract'.

/** @returns {[object, string]} the declared tensor `name` among graph `key`'s `kind` ('inputs'|'outputs'), and its path */
function find(m, key, kind, name) {
  const graph = m.graphs.get(key);
  const i = graph[kind].findIndex((s) => s.name === name);
  if (i < 0) {
    throw new BundleError(`${graph.file} ${kind}: no tensor named ${JSON.stringify(name)} (it has `
      + `${show(graph[kind].map((s) => s.name))})`, { code: 'contract', field: `graphs.${key}.${kind}` });
  }
  return [graph[kind][i], `graphs.${key}.${kind}[${i}]`];
}

const names = (m, key, kind) => new Set(m.graphs.get(key)[kind].map((t) => t.name));

function expect([tensor, field], shape, what, dtype) {
  if (tensor.dtype !== dtype) {
    throw new BundleError(`${what}: tensor ${JSON.stringify(tensor.name)} is ${tensor.dtype}, not ${dtype}; encoder, `
      + 'decoder and manifest disagree: export the bundle again', { code: 'contract', field: `${field}.dtype` });
  }
  const ok = tensor.shape.length === shape.length && shape.every((e, i) => (
    typeof e === 'string' ? typeof tensor.shape[i] === 'string' : e === tensor.shape[i]));
  if (!ok) {
    throw new BundleError(`${what}: tensor ${JSON.stringify(tensor.name)} has shape ${show(tensor.shape)}, not `
      + `${show(shape)}; encoder, decoder and manifest disagree: export the bundle again`,
    { code: 'contract', field: `${field}.shape` });
  }
}

const constantShape = (c) => (c.kind === 'mask' ? ['batch', 'time'] : ['batch', 'time', c.size]);
const sameSet = (a, b) => a.size === b.size && [...a].every((x) => b.has(x));
const sorted = (items) => [...items].sort(byCodePoint);

/** decoder_step: step_input, the states and constants in; step_output, the next states (and weights) out. */
function checkStepGraph(m, dec) {
  const known = new Set([...m.state.map((s) => s.name), ...m.constants.map((c) => c.name), m.io.stepInput]);
  let extra = [...names(m, dec, 'inputs')].filter((n) => !known.has(n));
  if (extra.length) {
    throw new BundleError(`decoder_step has inputs ${show(sorted(extra))} that are neither step_input, a state nor `
      + 'a constant', { code: 'contract', field: `graphs.${dec}.inputs` });
  }
  const outputs = new Set([...m.state.map((s) => s.output), m.io.stepOutput, m.io.attention]);
  extra = [...names(m, dec, 'outputs')].filter((n) => !outputs.has(n));
  if (extra.length) {
    throw new BundleError(`decoder_step has outputs ${show(sorted(extra))} that are neither step_output, a state `
      + 'nor io.attention', { code: 'contract', field: `graphs.${dec}.outputs` });
  }
  m.constants.forEach((c, i) => {
    if (c.decoderInput) {
      expect(find(m, dec, 'inputs', c.name), constantShape(c), `constant ${JSON.stringify(c.name)} (decoder_step input)`,
        'float32');
    } else if (names(m, dec, 'inputs').has(c.name)) {
      throw new BundleError(`constant ${JSON.stringify(c.name)} has decoder_input false but decoder_step takes it`,
        { code: 'contract', field: `constants[${i}].decoder_input` });
    }
  });
  if (m.io.attention !== null) {
    expect(find(m, dec, 'outputs', m.io.attention), ['batch', 'time'], 'attention weights', 'float32');
  }
  for (const s of m.state) {
    const name = JSON.stringify(s.name);
    expect(find(m, dec, 'inputs', s.name), ['batch', s.size], `state ${name} (decoder_step input)`, 'float32');
    expect(find(m, dec, 'outputs', s.output), ['batch', s.size],
      `state ${name} (decoder_step output ${JSON.stringify(s.output)})`, 'float32');
  }
  const tokens = m.target.kind === 'tokens';
  expect(find(m, dec, 'outputs', m.io.stepOutput), ['batch', tokens ? m.target.vocabulary.size : m.target.features],
    'step_output', 'float32');
  if (tokens) expect(find(m, dec, 'inputs', m.io.stepInput), ['batch', 1], 'step_input', 'int32');
  else expect(find(m, dec, 'inputs', m.io.stepInput), ['batch', m.target.features], 'step_input', 'float32');
}

/** A fused decode graph: states and constants, first_input and max_steps in; tokens out. */
function checkLoop(m, key, mode) {
  const { file } = m.graphs.get(key);
  const have = names(m, key, 'inputs');
  const want = new Set([...m.state.map((s) => s.name), ...m.constants.map((c) => c.name), LOOP_INPUT, LOOP_STEPS]);
  if (!sameSet(have, want)) {
    throw new BundleError(`${file} (mode ${JSON.stringify(mode)}): inputs ${show(sorted(have))} should be `
      + `${show(sorted(want))}`, { code: 'contract', field: `graphs.${key}.inputs` });
  }
  for (const s of m.state) {
    expect(find(m, key, 'inputs', s.name), ['batch', s.size], `state ${JSON.stringify(s.name)} (${file})`, 'float32');
  }
  for (const c of m.constants) {
    expect(find(m, key, 'inputs', c.name), constantShape(c), `constant ${JSON.stringify(c.name)} (${file})`, 'float32');
  }
  expect(find(m, key, 'inputs', LOOP_STEPS), [], 'max_steps', 'int64');
  if (m.target.kind === 'tokens') {
    expect(find(m, key, 'inputs', LOOP_INPUT), ['batch'], 'first_input', 'int32');
    expect(find(m, key, 'outputs', LOOP_TOKENS), ['steps', 'batch'], 'tokens', 'int32');
  } else {
    const width = m.target.features;
    expect(find(m, key, 'inputs', LOOP_INPUT), ['batch', width], 'first_input', 'float32');
    expect(find(m, key, 'outputs', LOOP_PREDICTIONS), ['steps', 'batch', width], 'predictions', 'float32');
  }
}

/** Sizes, names and dtypes must agree between encoder, decoders and the declared sides. */
function checkContract(m) {
  const enc = m.modes.get(m.stepMode).encoder;
  if (m.hasStep) checkStepGraph(m, 'decoder_step');
  for (const c of m.constants) {
    expect(find(m, enc, 'outputs', c.encoderOutput), constantShape(c),
      `constant ${JSON.stringify(c.name)} (encoder output ${JSON.stringify(c.encoderOutput)})`, 'float32');
  }
  for (const s of m.state.filter((x) => x.init === 'encoder')) {
    expect(find(m, enc, 'outputs', s.encoderOutput), ['batch', s.size],
      `state ${JSON.stringify(s.name)} (encoder output ${JSON.stringify(s.encoderOutput)})`, 'float32');
  }
  if (m.source.kind === 'features') {
    expect(find(m, enc, 'inputs', m.io.source), ['batch', 'time', m.source.features], 'source', 'float32');
  } else expect(find(m, enc, 'inputs', m.io.source), ['batch', 'time'], 'source', 'int32');
  if (m.source.kind === 'tokens' && m.io.sourceLength !== null) {
    expect(find(m, enc, 'inputs', m.io.sourceLength), ['batch'], 'source_length', 'int32');
  }
  const fed = new Set([m.io.source, m.source.kind === 'tokens' ? m.io.sourceLength : null].filter((n) => n !== null));
  const inputs = names(m, enc, 'inputs');
  const first = m.graphs.get(enc);
  if (!sameSet(inputs, fed)) {
    throw new BundleError(`${first.file}: inputs ${show(sorted(inputs))} do not match io.padding `
      + `${JSON.stringify(m.io.padding)}, which feeds ${show(sorted(fed))}; the manifest belongs to another bundle`,
    { code: 'contract', field: `graphs.${enc}.inputs` });
  }
  const face = (g) => JSON.stringify([g.inputs, g.outputs]);
  for (const mode of sorted(m.modes.keys())) {
    const graphs = m.modes.get(mode);
    if (graphs.decoder !== 'decoder_step') checkLoop(m, graphs.decoder, mode);
    const other = m.graphs.get(graphs.encoder);
    if (face(other) !== face(first)) {
      throw new BundleError(`${other.file} (mode ${JSON.stringify(mode)}): its inputs and outputs differ from `
        + `${first.file}'s`, { code: 'contract', field: `decode.modes.${mode}.encoder` });
    }
  }
}

/**
 * Read and verify the bundle at `dir`: its manifest, every graph's hash, external data, interface and
 * the contract between them; one onnxruntime session per graph.
 * @param {string} dir
 * @param {number} threads onnxruntime's intra-op threads
 * @returns {Promise<{manifest: import('./manifest').Manifest, sessions: Map<string, import('onnxruntime-node').InferenceSession>}>}
 */
async function openBundle(dir, threads) {
  const manifest = readManifest(dir);
  const read = async (spec, field) => {
    const file = path.join(dir, spec.file);
    if (lexists(file)) checkPlainFile(file, spec.file, field); // a link or a FIFO is refused as such
    if (!stat(file)?.isFile()) {
      throw new BundleError(`${path.join(dir, short(spec.file))} is missing; the bundle is incomplete: copy the whole directory `
        + 'or export again',
        { code: 'graph_missing', field });
    }
    const info = fs.statSync(file);
    if (info.size > MAX_GRAPH_BYTES) {
      throw new BundleError(`${short(spec.file)}: ${info.size} bytes, more than a graph may hold (${MAX_GRAPH_BYTES}); `
        + 'the bundle is corrupt or hostile: export it again', { code: 'too_big', field });
    }
    return fs.readFileSync(file);
  };
  const sha256 = async (data) => crypto.createHash('sha256').update(data).digest('hex');
  return { manifest, sessions: await openGraphs(manifest, read, sha256, sessionOptions(threads)) };
}

module.exports = { openBundle, openGraphs, readManifest, manifestFromBytes };
