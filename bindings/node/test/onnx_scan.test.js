'use strict';
/** The external-data walk over an ONNX graph's protobuf bytes, and the IR-version rewrite. */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { checkNoExternalData, withIrVersion } = require('../lib/onnx_scan');
const { modelWith, numberField, message, varint, INLINE, EXTERNAL } = require('./helpers');

test('the external-data walk: inline tensors pass, malformed bytes are named', () => {
  for (const where of ['initializer', 'subgraph', 'function', 'training info']) {
    checkNoExternalData(modelWith(INLINE, where), 'g.onnx');
    checkNoExternalData(modelWith(numberField(14, 0), where), 'g.onnx');
  }
  const fixed = Buffer.concat([varint((3 << 3) | 1), Buffer.alloc(8), varint((4 << 3) | 5), Buffer.alloc(4)]);
  checkNoExternalData(Buffer.concat([fixed, modelWith(INLINE, 'initializer')]), 'g.onnx');
  assert.throws(() => checkNoExternalData(Buffer.concat([fixed, modelWith(EXTERNAL, 'initializer')]), 'g.onnx'),
    { message: /^g.onnx: a tensor keeps its data in an external file/ });
  const malformed = [
    [message(7, message(5, EXTERNAL)).subarray(0, -1), 'a field runs past the end of its message'],
    [Buffer.from([0x08]), 'truncated or oversized varint'],
    [Buffer.concat([Buffer.from([0x08]), Buffer.alloc(11, 0xff)]), 'truncated or oversized varint'],
    [Buffer.concat([varint((3 << 3) | 1), Buffer.alloc(3)]), 'truncated fixed-width field'],
    [varint((3 << 3) | 3), 'unsupported wire type 3'],
  ];
  for (const [data, problem] of malformed) {
    assert.throws(() => checkNoExternalData(data, 'g.onnx'), {
      name: 'BundleError', code: 'not_onnx', message: `g.onnx: not a valid ONNX model (${problem}); export the bundle again` });
  }
});

test('withIrVersion rewrites only the ir_version field', () => {
  const model = Buffer.concat([numberField(1, 14), message(7, message(5, INLINE)), numberField(1, 300)]);
  const out = withIrVersion(model, 13);
  assert.deepEqual(Buffer.from(out), Buffer.concat([numberField(1, 13), message(7, message(5, INLINE))]));
});
