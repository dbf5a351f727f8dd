'use strict';
/** A missing, corrupt, tampered or hostile bundle is refused before anything runs, with the Python runtime's codes. */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const { load, BundleError } = require('..');
const {
  bundle, copyBundle, editManifest, replaceGraph, tempDir, modelWith, message, EXTERNAL, ENTRIES, INLINE,
} = require('./helpers');

/**
 * assert that loading `dir` fails with a BundleError of this code and field whose message matches `expected`
 * (a string: exactly; a RegExp; or undefined).
 */
async function refused(dir, code, field, expected) {
  await assert.rejects(load(dir), (e) => {
    assert.ok(e instanceof BundleError, `${e.name}: ${e.message}`);
    assert.deepEqual([e.code, e.field], [code, field], e.message);
    if (typeof expected === 'string') assert.equal(e.message, expected);
    else if (expected) assert.match(e.message, expected);
    assert.ok(e.message.length < 400, e.message);
    return true;
  });
}

test('a missing directory or manifest', async () => {
  const dir = tempDir();
  await refused(path.join(dir, 'nowhere'), 'no_bundle', null, `no bundle at "${dir}/nowhere": expected a directory `
    + 'holding manifest.json (write one with `seq2seq-edge export RUN_DIR --out BUNDLE`)');
  await refused(dir, 'no_manifest', null, `"${dir}" has no manifest.json; it is not a seq2seq-edge bundle, or it is `
    + 'incomplete: export it again');
});

test('a manifest that is not JSON, not UTF-8, nested too deeply or too large', async () => {
  const dir = copyBundle('dates_tiny');
  const file = path.join(dir, 'manifest.json');
  const cases = [
    ['{"format": ', 'not_json', /^.*manifest.json: not valid JSON \(.+\); the manifest is corrupt: export the bundle again$/],
    ['{"format": "seq2seq-edge/1",\n "x": [1, 2,]}', 'not_json', /not valid JSON/],
    ['{"x": NaN}', 'not_json', /not valid JSON/],
    ['\ufeff{}', 'bom', /begins with a byte order mark/],
    ['{"é": 1} x', 'not_json', /not valid JSON/],
    [Buffer.from([0x7b, 0xff]), 'not_utf8', /not valid UTF-8/],
    [Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), 'not_utf8', /not valid UTF-8/], // an encoded surrogate
    ['['.repeat(5000) + ']'.repeat(5000), 'too_deep', /JSON nested deeper than 64 levels/],
    [`${'['.repeat(65)}"]]]"${']'.repeat(65)}`, 'too_deep', /nested deeper/],
  ];
  for (const [content, code, expected] of cases) {
    fs.writeFileSync(file, content);
    await refused(dir, code, null, expected);
  }
  fs.writeFileSync(file, `${'['.repeat(64)}"[[[\\"[["${']'.repeat(64)}`); // brackets in strings do not count
  await refused(dir, 'type', '', /^manifest.json must be an object, not array \[\[\[.*\.\.\.$/);
  fs.writeFileSync(file, '[]');
  await refused(dir, 'type', '', 'manifest.json must be an object, not array []');
  fs.truncateSync(file, 64 * 1024 * 1024 + 1);
  await refused(dir, 'too_big', null, `${file}: 67108865 bytes, more than a manifest may hold (67108864); it is not `
    + 'a seq2seq-edge manifest');
});

test('an unknown format, a missing or mistyped field, a rule between fields', async () => {
  const cases = [
    [(m) => { m.format = 'seq2seq-edge/99'; }, 'const', 'format', /^manifest.json: format must be "seq2seq-edge\/1", not "seq2seq-edge\/99"; this runtime reads/],
    [(m) => { delete m.decode.max_steps; }, 'missing', 'decode.max_steps', 'manifest.json: decode.max_steps is missing'],
    [(m) => { m.state[0].size = '24'; }, 'type', 'state[0].size', 'manifest.json: state[0].size must be an integer, not string "24"'],
    [(m) => { m.state[0].size = 24.5; }, 'type', 'state[0].size'],
    [(m) => { m.decode.max_steps = 10 ** 6; }, 'range', 'decode.max_steps', 'manifest.json: decode.max_steps must be an integer in [1, 100000], not 1000000'],
    [(m) => { m.decode.default_mode = 'fast'; }, 'default_mode', 'decode.default_mode', /must be one of the modes \["step","fused","fused-int8"\], not "fast"/],
    [(m) => { m.decode.modes.fused.decoder = 'gone'; }, 'mode_graph', 'decode.modes.fused.decoder', /names graph "gone"/],
    [(m) => { m.target.vocabulary.end_id = null; }, 'end_token', 'target.vocabulary.end_id'],
    [(m) => { m.graphs.encoder.inputs[0].shape = ['batch', 'time', 1, 1, 1, 1, 1, 1, 1, 1]; }, 'too_many', 'graphs.encoder.inputs[0].shape'],
    [(m) => { m.source.vocabulary.tokens.push('a'); }, 'duplicate', `source.vocabulary.tokens[${0}]`],
    [(m) => { m.io.extra = 1; }, 'unknown_field', 'io.extra'],
    [(m) => { m.target.vocabulary.start_id = 10 ** 6; }, 'index', 'target.vocabulary.start_id'],
    [(m) => { m.graphs.encoder.sha256 = 'x'.repeat(300); }, 'pattern', 'graphs.encoder.sha256'],
  ];
  for (const [change, code, field, expected] of cases) {
    const dir = copyBundle('dates_tiny');
    let where = field;
    editManifest(dir, (m) => {
      change(m);
      if (code === 'duplicate') where = `source.vocabulary.tokens[${m.source.vocabulary.tokens.length - 1}]`;
    });
    await refused(dir, code, where, expected);
  }
});

test('graph files: plain names only, present, unchanged since export', async () => {
  let dir = copyBundle('dates_tiny');
  editManifest(dir, (m) => { m.graphs.encoder.file = '../encoder.onnx'; });
  await refused(dir, 'graph_path', 'graphs.encoder.file', 'manifest.json: graph file "../encoder.onnx" must be a '
    + 'plain file name inside the bundle');
  dir = copyBundle('dates_tiny');
  fs.rmSync(path.join(dir, 'decoder_step.onnx'));
  await refused(dir, 'graph_missing', 'graphs.decoder_step.file', `${dir}/decoder_step.onnx is missing; the bundle `
    + 'is incomplete: copy the whole directory or export again');
  dir = copyBundle('dates_tiny');
  const file = path.join(dir, 'encoder.onnx');
  const data = fs.readFileSync(file);
  data[data.length - 10] ^= 0xff;
  fs.writeFileSync(file, data);
  await refused(dir, 'hash_mismatch', 'graphs.encoder.sha256', /^encoder.onnx: sha256 [0-9a-f]{16}\.\.\. does not match the manifest's [0-9a-f]{16}\.\.\.; the file was changed or corrupted after export: export again$/);
});

test('a graph that is not a valid model is refused before onnxruntime sees it', async () => {
  const dir = copyBundle('dates_tiny');
  replaceGraph(dir, 'encoder', fs.readFileSync(path.join(dir, 'encoder.onnx')).subarray(0, 200));
  await refused(dir, 'not_onnx', 'graphs.encoder.file', 'encoder.onnx: not a valid ONNX model (a field runs past the '
    + 'end of its message); export the bundle again');
});

const PLACES = ['initializer', 'sparse initializer', 'node attribute', 'attribute list', 'sparse attribute', 'subgraph',
  'subgraph list', 'function', 'function default attribute', 'training info'];

test('external data is refused wherever a tensor hides it', async () => {
  const dir = copyBundle('dates_tiny');
  for (const where of PLACES) {
    for (const tensor of [EXTERNAL, ENTRIES, Buffer.concat([INLINE, EXTERNAL])]) {
      replaceGraph(dir, 'encoder', modelWith(tensor, where));
      await refused(dir, 'external_data', 'graphs.encoder.file', 'encoder.onnx: a tensor keeps its data in an external file; a bundle may not read anything '
        + 'outside itself, so graphs must hold all their weights (export the bundle again)');
    }
  }
});

test('the external-data walk is bounded', async () => {
  const dir = copyBundle('dates_tiny');
  let graph = message(5, EXTERNAL);
  for (let i = 0; i < 64; i++) graph = message(1, message(5, message(6, graph)));
  replaceGraph(dir, 'encoder', message(7, graph));
  await refused(dir, 'not_onnx', 'graphs.encoder.file', 'encoder.onnx: not a valid ONNX model (messages nested more '
    + 'than 64 deep); export the bundle again');
});

test('a manifest that disagrees with its graphs', async () => {
  const cases = [
    [(m) => { m.graphs.encoder.outputs[0].shape = ['batch', 47]; }, 'graph_shape', 'graphs.encoder.outputs[0].shape',
      'encoder.onnx: tensor "h0" has shape ["batch",48] in the graph but ["batch",47] in the manifest'],
    [(m) => { m.graphs.encoder.inputs[0].dtype = 'int64'; }, 'graph_dtype', 'graphs.encoder.inputs[0].dtype',
      'encoder.onnx: tensor "source" is int32 in the graph but int64 in the manifest'],
    [(m) => { m.graphs.encoder.outputs[0].name = 'h9'; }, 'graph_io', 'graphs.encoder.outputs',
      'encoder.onnx: the graph\'s outputs ["c0","h0"] are not the manifest\'s ["c0","h9"]; the manifest belongs to '
      + 'another bundle'],
    [(m) => { m.state[0].size = 47; }, 'contract', 'graphs.decoder_step.inputs[1].shape',
      'state "h0" (decoder_step input): tensor "h0" has shape ["batch",48], not ["batch",47]; encoder, decoder and '
      + 'manifest disagree: export the bundle again'],
  ];
  for (const [change, code, field, expected] of cases) {
    const dir = copyBundle('dates_tiny');
    editManifest(dir, change);
    await refused(dir, code, field, expected);
  }
});

test('bundles this runtime does not decode are refused with a pointer to the Python runtime', async () => {
  await refused(bundle('sine_ae_tiny'), 'unsupported', 'family', /^manifest.json: family "autoencoder": the Node.js runtime decodes token seq2seq bundles .*Python runtime/);
  const mixed = copyBundle('sine_tiny');
  editManifest(mixed, (m) => {
    m.target = { kind: 'tokens', vocabulary: { tokens: ['<s>', '</s>', 'a'], start_id: 0, end_id: 1 } };
    m.decode.first_input = 'start_token';
  });
  await refused(mixed, 'unsupported', 'source.kind', /^manifest.json: the source is real-valued features; the Node.js runtime decodes token seq2seq bundles .*Python runtime/);
});

test('a forecast bundle decodes windows, not texts', async () => {
  const model = await load(bundle('sine_tiny'));
  await assert.rejects(model.generateText(['1 2']), { name: 'InputError', message: /real-valued features, not tokens; use generateFeatures\(\)$/ });
  const out = await model.generateFeatures([[[0.1, 0.2], [0.3, 0.4]]], { maxSteps: 3 });
  assert.deepEqual([out.length, out[0].length, out[0][0].length], [1, 3, 2]);
  await assert.rejects(model.generateFeatures([[[0.1, NaN]]]), { name: 'InputError', message: /^source: contains a value that is not a finite number/ });
});
