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
const { loads, decodeUtf8, DecodeError } = require('./pyjson');
const py = require('./py');

const MANIFEST = 'manifest.json';
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
const LOOP_INPUT = 'first_input';
const LOOP_STEPS = 'max_steps';
const LOOP_TOKENS = 'tokens';
// onnxruntime-node's type names -> the ONNX type string the Python runtime would print
const ORT_TYPES = { float64: 'double', float32: 'float', int32: 'int32', int64: 'int64' };
const OUR_DTYPES = new Set(['int32', 'int64', 'float32']);

/** str(Path(p)) in Python: repeated slashes and '.' parts dropped, no trailing slash. */
function pyPath(p) {
  const root = p.startsWith('//') && !p.startsWith('///') ? '//' : p.startsWith('/') ? '/' : '';
  const joined = root + p.split('/').filter((x) => x !== '' && x !== '.').join('/');
  return joined || '.';
}

/** str(Path(base) / name) */
function pyJoin(base, name) {
  if (base === '.') return name;
  return base.endsWith('/') ? base + name : `${base}/${name}`;
}

function stat(file) {
  try {
    return fs.statSync(file);
  } catch {
    return null; // missing, unreadable or not a valid path: Python's is_dir()/is_file() say False
  }
}

/**
 * Read and parse dir/manifest.json.
 * @param {string} dir
 * @returns {import('./manifest').Manifest}
 */
function readManifest(dir) {
  const where = pyPath(dir);
  if (!stat(dir)?.isDirectory()) {
    throw new BundleError(`no bundle at ${py.reprStr(where)}: expected a directory holding ${MANIFEST} `
      + '(write one with `seq2seq-edge export RUN_DIR --out BUNDLE`)');
  }
  const file = pyJoin(where, MANIFEST);
  const info = stat(path.join(dir, MANIFEST));
  if (!info?.isFile()) {
    throw new BundleError(`${py.reprStr(where)} has no ${MANIFEST}; it is not a seq2seq-edge bundle, or it is `
      + 'incomplete: export it again');
  }
  if (info.size > MAX_MANIFEST_BYTES) {
    throw new BundleError(`${file}: ${info.size} bytes, more than a manifest may hold (${MAX_MANIFEST_BYTES}); `
      + 'it is not a seq2seq-edge manifest');
  }
  return manifestFromBytes(fs.readFileSync(path.join(dir, MANIFEST)), file);
}

/**
 * Parse and check a manifest's bytes (also what the browser demo calls on the manifest it fetched).
 * @param {Uint8Array} bytes
 * @param {string} file the manifest's name in messages
 * @returns {import('./manifest').Manifest}
 */
function manifestFromBytes(bytes, file) {
  let data;
  try {
    data = loads(decodeUtf8(bytes));
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    if (error.recursion) {
      throw new BundleError(`${file}: JSON nested too deeply to be a manifest; the manifest is corrupt`);
    }
    throw new BundleError(`${file}: not valid JSON (${error.message}); the manifest is corrupt: export the `
      + 'bundle again');
  }
  return Object.assign(parseManifest(data), { raw: data });
}

/** @returns {import('onnxruntime-node').InferenceSession.SessionOptions} */
function sessionOptions(threads) {
  if (!(Number.isInteger(threads) && threads >= 1)) {
    throw new InputError(`threads must be a positive integer, got ${String(threads)}`);
  }
  return {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
  };
}

/**
 * An onnxruntime session on verified bytes. A graph that declares a newer ONNX IR version than this
 * onnxruntime reads is given the newest it reads (the bytes otherwise unchanged): bundles exported before
 * export pinned IR 8 declare onnx's newest (14) in their fused loops, while using nothing past their opset.
 */
async function createSession(data, file, options) {
  try {
    try {
      return await ort.InferenceSession.create(data, options);
    } catch (error) {
      const ir = /Unsupported model IR version: (\d+), max supported IR version: (\d+)/.exec(String(error.message));
      if (!ir || Number(ir[2]) >= Number(ir[1])) throw error;
      return await ort.InferenceSession.create(withIrVersion(data, Number(ir[2])), options);
    }
  } catch (error) {
    throw new BundleError(`${file}: onnxruntime cannot load it (${error.message}); export the bundle again`);
  }
}

/** The error for a graph whose bytes are not the ones the manifest hashed. */
function shaMismatch(spec, actual) {
  return new BundleError(`${spec.file}: sha256 ${actual.slice(0, 16)}... does not match the manifest's `
    + `${spec.sha256.slice(0, 16)}...; the file was changed or corrupted after export: export again`);
}

/**
 * One graph's session from its bytes, after the checks every runtime makes first: a plain file name, the
 * bytes the manifest hashed, no external data (onnxruntime would resolve its paths), then the interface.
 * @param {object} spec the manifest's entry for the graph
 * @param {(spec: object) => Promise<Uint8Array>} read the graph's bytes (a folder, or fetch in the browser)
 * @param {(bytes: Uint8Array) => Promise<string>} sha256 hex digest
 * @param {object} options onnxruntime session options
 */
async function openGraph(spec, read, sha256, options) {
  if (spec.file.includes('/') || spec.file === '.') {
    throw new BundleError(`manifest.json: graph file ${py.repr(spec.file)} must be a plain file name inside the bundle`);
  }
  const data = await read(spec);
  const actual = await sha256(data);
  if (actual !== spec.sha256) throw shaMismatch(spec, actual);
  checkNoExternalData(data, spec.file);
  const session = await createSession(data, spec.file, options);
  try {
    checkInterface(spec, session);
  } catch (error) {
    await session.release();
    throw error;
  }
  return session;
}

/**
 * Every graph's verified session, then the contract between them (sessions released on any failure).
 * @returns {Promise<Map<string, object>>}
 */
async function openGraphs(manifest, read, sha256, options) {
  const sessions = new Map();
  try {
    for (const [name, spec] of manifest.graphs) sessions.set(name, await openGraph(spec, read, sha256, options));
    checkContract(manifest);
  } catch (error) {
    await Promise.all(Array.from(sessions.values(), (s) => s.release()));
    throw error;
  }
  return sessions;
}

/** The graph's own names, dtypes and shapes must be the manifest's. */
function checkInterface(spec, session) {
  for (const [kind, declared, actual] of [['input', spec.inputs, session.inputMetadata],
    ['output', spec.outputs, session.outputMetadata]]) {
    const found = new Map(actual.map((a) => [a.name, a]));
    const want = declared.map((t) => t.name);
    if (!sameSet(new Set(found.keys()), new Set(want))) {
      throw new BundleError(`${spec.file}: graph ${kind}s ${py.repr(py.sorted(found.keys()))} do not match the `
        + `manifest's ${py.repr(py.sorted(want))}; the manifest belongs to another bundle`);
    }
    for (const t of declared) checkTensor(spec.file, t, found.get(t.name));
  }
}

function checkTensor(file, declared, actual) {
  const dtype = !actual.isTensor ? 'a non-tensor value'
    : OUR_DTYPES.has(actual.type) ? actual.type : `tensor(${ORT_TYPES[actual.type] || actual.type})`;
  if (dtype !== declared.dtype) {
    throw new BundleError(`${file}: tensor ${py.repr(declared.name)} is ${dtype} in the graph but ${declared.dtype} `
      + 'in the manifest');
  }
  const shape = actual.shape.map((a) => (a === '' ? null : a)); // an unnamed dynamic axis: None in Python
  const same = shape.length === declared.shape.length && declared.shape.every((d, i) => (
    typeof d === 'number' ? d === shape[i] : typeof shape[i] !== 'number'));
  if (!same) {
    throw new BundleError(`${file}: tensor ${py.repr(declared.name)} has shape ${py.repr(shape)} in the graph but `
      + `${py.repr(declared.shape)} in the manifest`);
  }
}

/** GraphSpec.input / .output: the declared tensor of that name. */
function byName(graph, kind, name) {
  const specs = kind === 'input' ? graph.inputs : graph.outputs;
  const spec = specs.find((s) => s.name === name);
  if (!spec) {
    throw new BundleError(`${graph.file} ${kind}s: no tensor named ${py.repr(name)} `
      + `(have ${py.repr(specs.map((s) => s.name))})`);
  }
  return spec;
}

function expect(tensor, shape, what, dtype) {
  if (tensor.dtype !== dtype) {
    throw new BundleError(`${what}: tensor ${py.repr(tensor.name)} is ${tensor.dtype}, expected ${dtype}; encoder, `
      + 'decoder and manifest disagree: export the bundle again');
  }
  const ok = tensor.shape.length === shape.length && shape.every((e, i) => (
    typeof e === 'string' ? typeof tensor.shape[i] === 'string' : e === tensor.shape[i]));
  if (!ok) {
    throw new BundleError(`${what}: tensor ${py.repr(tensor.name)} has shape ${py.repr(tensor.shape)}, expected `
      + `${py.repr(shape)}; encoder, decoder and manifest disagree: export the bundle again`);
  }
}

const constantShape = (c) => (c.kind === 'mask' ? ['batch', 'time'] : ['batch', 'time', c.size]);
const sameSet = (a, b) => a.size === b.size && [...a].every((x) => b.has(x));

/** decoder_step: step_input, the states and constants in; step_output, the next states (and weights) out. */
function checkStepGraph(m, dec) {
  const known = new Set([...m.state.map((s) => s.name), ...m.constants.map((c) => c.name), m.io.stepInput]);
  let extra = dec.inputs.map((t) => t.name).filter((n) => !known.has(n));
  if (extra.length) {
    throw new BundleError(`decoder_step has inputs ${py.repr(py.sorted(new Set(extra)))} that are neither `
      + 'step_input, a state nor a constant');
  }
  const outputs = new Set([...m.state.map((s) => s.output), m.io.stepOutput, m.io.attention]);
  extra = dec.outputs.map((t) => t.name).filter((n) => !outputs.has(n));
  if (extra.length) {
    throw new BundleError(`decoder_step has outputs ${py.repr(py.sorted(new Set(extra)))} that are neither `
      + 'step_output, a state nor io.attention');
  }
  for (const c of m.constants) {
    if (c.decoderInput) {
      expect(byName(dec, 'input', c.name), constantShape(c), `constant ${py.repr(c.name)} (decoder_step input)`,
        'float32');
    } else if (dec.inputs.some((t) => t.name === c.name)) {
      throw new BundleError(`constant ${py.repr(c.name)} has decoder_input false but decoder_step takes it`);
    }
  }
  if (m.io.attention !== null) {
    expect(byName(dec, 'output', m.io.attention), ['batch', 'time'], 'attention weights', 'float32');
  }
  for (const s of m.state) {
    expect(byName(dec, 'input', s.name), ['batch', s.size], `state ${py.repr(s.name)} (decoder_step input)`,
      'float32');
    expect(byName(dec, 'output', s.output), ['batch', s.size],
      `state ${py.repr(s.name)} (decoder_step output ${py.repr(s.output)})`, 'float32');
  }
  expect(byName(dec, 'output', m.io.stepOutput), ['batch', m.target.vocabulary.size], 'step_output', 'float32');
  expect(byName(dec, 'input', m.io.stepInput), ['batch', 1], 'step_input', 'int32');
}

/** A fused decode graph: states and constants, first_input and max_steps in; tokens out. */
function checkLoop(m, graph, mode) {
  const names = new Set(graph.inputs.map((t) => t.name));
  const want = new Set([...m.state.map((s) => s.name), ...m.constants.map((c) => c.name), LOOP_INPUT, LOOP_STEPS]);
  if (!sameSet(names, want)) {
    throw new BundleError(`${graph.file} (mode ${py.repr(mode)}): inputs ${py.repr(py.sorted(names))} should be `
      + `${py.repr(py.sorted(want))}`);
  }
  for (const s of m.state) {
    expect(byName(graph, 'input', s.name), ['batch', s.size], `state ${py.repr(s.name)} (${graph.file})`, 'float32');
  }
  for (const c of m.constants) {
    expect(byName(graph, 'input', c.name), constantShape(c), `constant ${py.repr(c.name)} (${graph.file})`,
      'float32');
  }
  expect(byName(graph, 'input', LOOP_STEPS), [], 'max_steps', 'int64');
  expect(byName(graph, 'input', LOOP_INPUT), ['batch'], 'first_input', 'int32');
  expect(byName(graph, 'output', LOOP_TOKENS), ['steps', 'batch'], 'tokens', 'int32');
}

/** Sizes, names and dtypes must agree between encoder, decoders and the declared sides. */
function checkContract(m) {
  const enc = m.graphs.get(m.modes.get(m.stepMode).encoder);
  if (new Set(m.state.map((s) => s.name)).size !== m.state.length
      || new Set(m.state.map((s) => s.output)).size !== m.state.length) {
    throw new BundleError('manifest.json: state names and outputs must be unique');
  }
  if (m.hasStep) checkStepGraph(m, m.graphs.get('decoder_step'));
  for (const c of m.constants) {
    expect(byName(enc, 'output', c.encoderOutput), constantShape(c),
      `constant ${py.repr(c.name)} (encoder output ${py.repr(c.encoderOutput)})`, 'float32');
  }
  for (const s of m.state.filter((x) => x.init === 'encoder')) {
    expect(byName(enc, 'output', s.encoderOutput), ['batch', s.size],
      `state ${py.repr(s.name)} (encoder output ${py.repr(s.encoderOutput)})`, 'float32');
  }
  expect(byName(enc, 'input', m.io.source), ['batch', 'time'], 'source', 'int32');
  if (m.io.padding === null) {
    throw new BundleError("manifest.json: io.padding must say how a token source's padding is handled");
  }
  if (m.io.sourceLength !== null) {
    expect(byName(enc, 'input', m.io.sourceLength), ['batch'], 'source_length', 'int32');
  }
  const fed = new Set([m.io.source, m.io.sourceLength].filter((n) => n !== null));
  const inputs = new Set(enc.inputs.map((t) => t.name));
  if (!sameSet(inputs, fed)) {
    throw new BundleError(`${enc.file}: inputs ${py.repr(py.sorted(inputs))} do not match io.padding `
      + `${py.repr(m.io.padding)}, which feeds ${py.repr(py.sorted(fed))}; the manifest belongs to another bundle`);
  }
  const face = (g) => JSON.stringify([g.inputs, g.outputs]);
  for (const [mode, graphs] of m.modes) {
    if (graphs.decoder !== 'decoder_step') checkLoop(m, m.graphs.get(graphs.decoder), mode);
    const other = m.graphs.get(graphs.encoder);
    if (face(other) !== face(enc)) {
      throw new BundleError(`${other.file} (mode ${py.repr(mode)}): its inputs and outputs differ from ${enc.file}'s`);
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
  const where = pyPath(dir);
  const read = async (spec) => {
    const file = path.join(dir, spec.file);
    if (!stat(file)?.isFile()) {
      throw new BundleError(`${pyJoin(where, spec.file)} is missing; the bundle is incomplete: copy the whole `
        + 'directory or export again');
    }
    return fs.readFileSync(file);
  };
  const sha256 = async (data) => crypto.createHash('sha256').update(data).digest('hex');
  return { manifest, sessions: await openGraphs(manifest, read, sha256, sessionOptions(threads)) };
}

module.exports = { openBundle, openGraphs, readManifest, manifestFromBytes, pyPath };
