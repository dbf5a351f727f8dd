'use strict';
/** Shared test helpers: the repository's committed bundles and golden outputs, writable bundle copies. */

const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const DATA = path.join(REPO, 'tests', 'data');
const CLI = path.resolve(__dirname, '..', 'cli.js');
const GOLDEN = JSON.parse(fs.readFileSync(path.join(DATA, 'golden.json'), 'utf8'));

/** The committed token bundles and their golden.json entries. */
const BUNDLES = {
  dates_tiny: 'dates', dates_attention_tiny: 'attention', keras_io_tiny: 'keras_io',
};

/** @param {string} name @returns {string} the committed bundle's directory */
const bundle = (name) => path.join(DATA, name);

let root = null;

/** @returns {string} a fresh temporary directory, removed (with the others) when the process exits */
function tempDir() {
  if (root === null) {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'seq2seq-edge-node-'));
    process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
  }
  return fs.mkdtempSync(path.join(root, 'd'));
}

/** @param {string} name @returns {string} a writable copy of a committed bundle */
function copyBundle(name) {
  const target = path.join(tempDir(), name);
  fs.cpSync(bundle(name), target, { recursive: true });
  return target;
}

/** Change the manifest of a bundle copy in place: change(manifest) edits the parsed JSON. */
function editManifest(dir, change) {
  const file = path.join(dir, 'manifest.json');
  const data = JSON.parse(fs.readFileSync(file, 'utf8'));
  change(data);
  fs.writeFileSync(file, JSON.stringify(data));
}

/** Replace a graph of a bundle copy with `bytes`, its manifest hash updated to match. */
function replaceGraph(dir, graph, bytes) {
  editManifest(dir, (m) => {
    fs.writeFileSync(path.join(dir, m.graphs[graph].file), bytes);
    m.graphs[graph].sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  });
}

/** A copy of dates_tiny without the step graph: fused modes only, as `export --modes fused,fused-int8` writes. */
function fusedOnlyBundle() {
  const dir = copyBundle('dates_tiny');
  editManifest(dir, (m) => {
    delete m.graphs.decoder_step;
    delete m.decode.modes.step;
    m.decode.strategies = ['greedy'];
  });
  fs.rmSync(path.join(dir, 'decoder_step.onnx'));
  return dir;
}

// Protobuf pieces for hand-made ONNX bytes (as tests/runtime/test_onnx_scan.py builds them). The varint
// encoder is written out again here on purpose: the tests' bytes must not come from the code under test.
function varint(value) {
  const out = [];
  do {
    const byte = value & 0x7f;
    value = Math.floor(value / 128);
    out.push(byte | (value ? 0x80 : 0));
  } while (value);
  return Buffer.from(out);
}
const message = (number, payload) => Buffer.concat([varint((number << 3) | 2), varint(payload.length), payload]);
const numberField = (number, value) => Buffer.concat([varint(number << 3), varint(value)]);
const EXTERNAL = numberField(14, 1); // TensorProto.data_location = EXTERNAL
const ENTRIES = message(13, Buffer.concat([message(1, Buffer.from('location')), message(2, Buffer.from('secret.txt'))]));
const INLINE = Buffer.concat([numberField(1, 3), numberField(2, 1), message(9, Buffer.alloc(12))]);

/**
 * @param {Buffer} tensor a TensorProto's bytes
 * @param {string} where where in the model to hide it
 * @returns {Buffer} a ModelProto holding it there
 */
function modelWith(tensor, where) {
  const attributeT = message(5, tensor);
  const places = {
    initializer: () => message(7, message(5, tensor)),
    'sparse initializer': () => message(7, message(15, message(1, tensor))),
    'node attribute': () => message(7, message(1, message(5, attributeT))),
    'attribute list': () => message(7, message(1, message(5, message(10, tensor)))),
    'sparse attribute': () => message(7, message(1, message(5, message(22, message(2, tensor))))),
    subgraph: () => message(7, message(1, message(5, message(6, message(5, tensor))))),
    'subgraph list': () => message(7, message(1, message(5, message(11, message(5, tensor))))),
    function: () => message(25, message(7, message(5, attributeT))),
    'function default attribute': () => message(25, message(11, attributeT)),
    'training info': () => message(20, message(2, message(5, tensor))),
  };
  return Buffer.concat([numberField(1, 8), places[where]()]);
}

/**
 * Run the CLI with `input` on stdin.
 * @returns {{status: number, stdout: string, stderr: string}}
 */
function runCli(args, input) {
  const result = spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 120000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

module.exports = {
  REPO, DATA, GOLDEN, BUNDLES, bundle, tempDir, copyBundle, editManifest, replaceGraph, fusedOnlyBundle,
  message, numberField, varint, EXTERNAL, ENTRIES, INLINE, modelWith, runCli,
};
