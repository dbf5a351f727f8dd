'use strict';
/** The Python-compatible pieces: repr, the JSON reader's errors, UTF-8 errors, the external-data walk. */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const py = require('../lib/py');
const { loads, decodeUtf8 } = require('../lib/pyjson');
const { checkNoExternalData, withIrVersion } = require('../lib/onnx_scan');
const { modelWith, numberField, message, varint, INLINE, EXTERNAL } = require('./helpers');

test('repr as Python writes it', () => {
  const cases = [
    [null, 'None'], [true, 'True'], [3, '3'], [10n ** 30n, '1000000000000000000000000000000'],
    [new py.PyFloat(1), '1.0'], [new py.PyFloat(1e16), '1e+16'], [new py.PyFloat(1.5e-7), '1.5e-07'],
    [new py.PyFloat(0.0001), '0.0001'], [new py.PyFloat(123.456), '123.456'], [new py.PyFloat(-0), '-0.0'],
    [new py.PyFloat(NaN), 'nan'], [new py.PyFloat(-Infinity), '-inf'], [new py.PyFloat(1e22), '1e+22'],
    ["it's", '"it\'s"'], ['a\'b"c', "'a\\'b\"c'"], ['\n\t\x01\x7f\u00a0é\u200b😀\ud800', "'\\n\\t\\x01\\x7f\\xa0é\\u200b😀\\ud800'"],
    [['a', 1, [null]], "['a', 1, [None]]"], [new Map([['k', new py.PyFloat(2)]]), "{'k': 2.0}"],
  ];
  for (const [value, expected] of cases) assert.equal(py.repr(value), expected);
  assert.equal(py.len('a😀b'), 3);
  assert.deepEqual(py.sorted(['b', '😀', '\uffff', 'a']), ['a', 'b', '\uffff', '😀']);
});

test('JSON as Python reads it: ints, floats, NaN, key order, errors', () => {
  const value = loads('{"2": 1, "1": 2.0, "n": NaN, "big": 123456789012345678901234567890, "a": 1, "a": 3}');
  assert.deepEqual([...value.keys()], ['2', '1', 'n', 'big', 'a']);
  assert.equal(py.typeName(value.get('2')), 'int');
  assert.equal(py.typeName(value.get('1')), 'float');
  assert.equal(value.get('big'), 123456789012345678901234567890n);
  assert.equal(value.get('a'), 3);
  const errors = [
    ['', 'Expecting value: line 1 column 1 (char 0)'],
    ['{"a":1,}', 'Expecting property name enclosed in double quotes: line 1 column 8 (char 7)'],
    ['{"a" 1}', "Expecting ':' delimiter: line 1 column 6 (char 5)"],
    ['[1 2]', "Expecting ',' delimiter: line 1 column 4 (char 3)"],
    ['"abc', 'Unterminated string starting at: line 1 column 1 (char 0)'],
    ['"a\\x"', 'Invalid \\escape: line 1 column 3 (char 2)'],
    ['"\\ud800\\u12"', 'Invalid \\uXXXX escape: line 1 column 9 (char 8)'],
    ['"a\x01"', 'Invalid control character at: line 1 column 3 (char 2)'],
    ['\n\n  x', 'Expecting value: line 3 column 3 (char 4)'],
    ['"😀" 1', 'Extra data: line 1 column 5 (char 4)'],
  ];
  for (const [text, message] of errors) assert.throws(() => loads(text), { message });
});

test("UTF-8 errors in CPython's words", () => {
  const cases = [
    [[0xff], "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"],
    [[0x61, 0xe2, 0x82], "'utf-8' codec can't decode bytes in position 1-2: unexpected end of data"],
    [[0xed, 0xa0, 0x80], "'utf-8' codec can't decode byte 0xed in position 0: invalid continuation byte"],
    [[0xf0, 0x9f, 0x98, 0x41], "'utf-8' codec can't decode bytes in position 0-2: invalid continuation byte"],
  ];
  for (const [bytes, message] of cases) assert.throws(() => decodeUtf8(Uint8Array.from(bytes)), { message });
  assert.equal(decodeUtf8(Buffer.from('\ufeffé😀')), '\ufeffé😀');
});

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
      name: 'BundleError', message: `g.onnx: not a valid ONNX model (${problem}); export the bundle again` });
  }
});

test('withIrVersion rewrites only the ir_version field', () => {
  const model = Buffer.concat([numberField(1, 14), message(7, message(5, INLINE)), numberField(1, 300)]);
  const out = withIrVersion(model, 13);
  assert.deepEqual(Buffer.from(out), Buffer.concat([numberField(1, 13), message(7, message(5, INLINE))]));
});
