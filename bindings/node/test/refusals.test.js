'use strict';
/** A missing, corrupt, tampered or hostile bundle is refused before anything runs, in the Python runtime's words. */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const { load, BundleError } = require('..');
const {
  bundle, copyBundle, editManifest, replaceGraph, tempDir, modelWith, message, EXTERNAL, ENTRIES, INLINE,
} = require('./helpers');

/** assert that loading `dir` fails with a BundleError whose message matches `expected` (string: exactly) */
async function refused(dir, expected) {
  await assert.rejects(load(dir), (e) => {
    assert.ok(e instanceof BundleError, `${e.name}: ${e.message}`);
    if (typeof expected === 'string') assert.equal(e.message, expected);
    else assert.match(e.message, expected);
    return true;
  });
}

test('a missing directory or manifest', async () => {
  const dir = tempDir();
  await refused(path.join(dir, 'nowhere'), `no bundle at '${dir}/nowhere': expected a directory holding manifest.json `
    + '(write one with `seq2seq-edge export RUN_DIR --out BUNDLE`)');
  await refused(`${dir}//./`, `'${dir}' has no manifest.json; it is not a seq2seq-edge bundle, or it is incomplete: `
    + 'export it again');
});

test('a manifest that is not JSON, not UTF-8, nested too deeply or too large', async () => {
  const dir = copyBundle('dates_tiny');
  const file = path.join(dir, 'manifest.json');
  const cases = [
    ['{"format": ', 'Expecting value: line 1 column 12 (char 11)'],
    ['{"format": "seq2seq-edge/1",\n "x": [1, 2,]}', 'Expecting value: line 2 column 13 (char 41)'],
    ['\ufeff{}', 'Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)'],
    ['{"é": 1} x', 'Extra data: line 1 column 10 (char 9)'],
    [Buffer.from([0x7b, 0xff]), "'utf-8' codec can't decode byte 0xff in position 1: invalid start byte"],
  ];
  for (const [content, problem] of cases) {
    fs.writeFileSync(file, content);
    await refused(dir, `${file}: not valid JSON (${problem}); the manifest is corrupt: export the bundle again`);
  }
  fs.writeFileSync(file, '['.repeat(5000) + ']'.repeat(5000));
  await refused(dir, `${file}: JSON nested too deeply to be a manifest; the manifest is corrupt`);
  fs.writeFileSync(file, '[]');
  await refused(dir, 'manifest.json: expected a JSON object, got list');
  fs.truncateSync(file, 64 * 1024 * 1024 + 1);
  await refused(dir, `${file}: 67108865 bytes, more than a manifest may hold (67108864); it is not a seq2seq-edge `
    + 'manifest');
});

test('an unknown format, a missing or mistyped field', async () => {
  const cases = [
    [(m) => { m.format = 'seq2seq-edge/99'; }, "manifest.json: format 'seq2seq-edge/99' is not supported (this "
      + "runtime reads 'seq2seq-edge/1'); re-export the bundle with a matching seq2seq-edge version"],
    [(m) => { delete m.decode.max_steps; }, "manifest.json.decode: field 'max_steps' is missing"],
    [(m) => { m.state[0].size = '24'; }, "manifest.json.state[0]: field 'size' must be int, got str"],
    [(m) => { m.decode.max_steps = 10 ** 6; }, 'manifest.json: decode.max_steps must be an integer in [1, 100000], '
      + 'got 1000000'],
    [(m) => { m.decode.default_mode = 'fast'; }, "manifest.json: decode.default_mode must be one of ['step', "
      + "'fused', 'fused-int8'], got 'fast'"],
    [(m) => { m.decode.modes.fused.decoder = 'gone'; }, "manifest.json: decode.modes.fused.decoder names graph "
      + "'gone', which is not in graphs"],
    [(m) => { m.target.vocabulary.end_id = null; }, 'manifest.json: target.vocabulary.end_id is null; a token target '
      + 'needs an end token'],
    [(m) => { m.graphs.encoder.inputs[0].shape = ['batch', 'time', 1, 1, 1, 1, 1, 1, 1, 1]; },
      "manifest.json.graphs.encoder.inputs[0]: shape must list at most 8 sizes (integers) or axis names, got "
      + "['batch', 'time', 1, 1, 1, 1, 1, 1, 1]"],
    [(m) => { m.source.vocabulary.tokens.push('a'); }, 'vocabulary: tokens must be unique'],
  ];
  for (const [change, expected] of cases) {
    const dir = copyBundle('dates_tiny');
    editManifest(dir, change);
    await refused(dir, expected);
  }
});

test('graph files: plain names only, present, unchanged since export', async () => {
  let dir = copyBundle('dates_tiny');
  editManifest(dir, (m) => { m.graphs.encoder.file = '../encoder.onnx'; });
  await refused(dir, "manifest.json: graph file '../encoder.onnx' must be a plain file name inside the bundle");
  dir = copyBundle('dates_tiny');
  fs.rmSync(path.join(dir, 'decoder_step.onnx'));
  await refused(dir, `${dir}/decoder_step.onnx is missing; the bundle is incomplete: copy the whole directory or `
    + 'export again');
  dir = copyBundle('dates_tiny');
  const file = path.join(dir, 'encoder.onnx');
  const data = fs.readFileSync(file);
  data[data.length - 10] ^= 0xff;
  fs.writeFileSync(file, data);
  await refused(dir, /^encoder.onnx: sha256 [0-9a-f]{16}\.\.\. does not match the manifest's [0-9a-f]{16}\.\.\.; the file was changed or corrupted after export: export again$/);
});

test('a graph that is not a valid model is refused before onnxruntime sees it', async () => {
  const dir = copyBundle('dates_tiny');
  replaceGraph(dir, 'encoder', fs.readFileSync(path.join(dir, 'encoder.onnx')).subarray(0, 200));
  await refused(dir, 'encoder.onnx: not a valid ONNX model (a field runs past the end of its message); export the '
    + 'bundle again');
});

const PLACES = ['initializer', 'sparse initializer', 'node attribute', 'attribute list', 'sparse attribute', 'subgraph',
  'subgraph list', 'function', 'function default attribute', 'training info'];

test('external data is refused wherever a tensor hides it', async () => {
  const dir = copyBundle('dates_tiny');
  for (const where of PLACES) {
    for (const tensor of [EXTERNAL, ENTRIES, Buffer.concat([INLINE, EXTERNAL])]) {
      replaceGraph(dir, 'encoder', modelWith(tensor, where));
      await refused(dir, 'encoder.onnx: a tensor keeps its data in an external file; a bundle may not read anything '
        + 'outside itself, so graphs must hold all their weights (export the bundle again)');
    }
  }
});

test('the external-data walk is bounded', async () => {
  const dir = copyBundle('dates_tiny');
  let graph = message(5, EXTERNAL);
  for (let i = 0; i < 64; i++) graph = message(1, message(5, message(6, graph)));
  replaceGraph(dir, 'encoder', message(7, graph));
  await refused(dir, 'encoder.onnx: not a valid ONNX model (messages nested more than 64 deep); export the bundle again');
});

test('a manifest that disagrees with its graphs', async () => {
  const cases = [
    [(m) => { m.graphs.encoder.outputs[0].shape = ['batch', 47]; }, "encoder.onnx: tensor 'h0' has shape "
      + "['batch', 48] in the graph but ['batch', 47] in the manifest"],
    [(m) => { m.graphs.encoder.inputs[0].dtype = 'int64'; }, "encoder.onnx: tensor 'source' is int32 in the graph "
      + 'but int64 in the manifest'],
    [(m) => { m.graphs.encoder.outputs[0].name = 'h9'; }, "encoder.onnx: graph outputs ['c0', 'h0'] do not match "
      + "the manifest's ['c0', 'h9']; the manifest belongs to another bundle"],
    [(m) => { m.state[0].size = 47; }, "state 'h0' (decoder_step input): tensor 'h0' has shape ['batch', 48], "
      + "expected ['batch', 47]; encoder, decoder and manifest disagree: export the bundle again"],
  ];
  for (const [change, expected] of cases) {
    const dir = copyBundle('dates_tiny');
    editManifest(dir, change);
    await refused(dir, expected);
  }
});

test('bundles this runtime does not decode are refused with a pointer to the Python runtime', async () => {
  await refused(bundle('sine_ae_tiny'), /^manifest.json: family 'autoencoder': the Node.js runtime decodes token seq2seq bundles .*Python runtime/);
  await refused(bundle('sine_tiny'), /^manifest.json: the source is real-valued features; the Node.js runtime decodes token seq2seq bundles .*Python runtime/);
});
