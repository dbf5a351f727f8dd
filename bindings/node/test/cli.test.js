'use strict';
/** node cli.js BUNDLE: one output line per input line, errors as one `error:` line and a non-zero exit. */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { lineBlocks } = require('../cli');
const { GOLDEN, bundle, copyBundle, editManifest, runCli } = require('./helpers');

test('stdin to stdout: one output per non-blank line, in order; \\r\\n and a last line without \\n', () => {
  const { inputs, outputs } = GOLDEN.dates;
  const input = `${inputs[0]}\r\n\n  \n${inputs.slice(1).join('\n')}`;
  for (const mode of [[], ['--mode', 'step'], ['--mode=fused']]) {
    const result = runCli([bundle('dates_tiny'), ...mode], input);
    assert.equal(result.stderr, '');
    assert.equal(result.status, 0);
    assert.equal(result.stdout, outputs.map((o) => `${o}\n`).join(''));
  }
});

test('--max-steps cuts the outputs', () => {
  const result = runCli([bundle('dates_attention_tiny'), '--max-steps', '4'], GOLDEN.attention.inputs.join('\n'));
  assert.equal(result.status, 0);
  assert.equal(result.stdout, GOLDEN.attention.outputs.map((o) => `${o.slice(0, 4)}\n`).join(''));
});

test('empty input: no output, success', () => {
  assert.deepEqual(runCli([bundle('keras_io_tiny')], ''), { status: 0, stdout: '', stderr: '' });
});

test('an error is one line on stderr and exit status 1', () => {
  const cases = [
    [[bundle('dates_tiny')], 'ok\n14 ~ 2023\n', /^error: "~" at position 3 of "14 ~ 2023" is not in the model's vocabulary; known symbols: .* Remove or replace it\n$/],
    [[bundle('dates_tiny'), '--mode', 'nope'], 'x\n', /^error: mode must be one of \["step","fused","fused-int8"\] for this bundle, got "nope"\n$/],
    [[bundle('dates_tiny'), '--max-steps', '0'], 'x\n', /^error: max_steps must be an integer in \[1, 19\] .*, got 0\n$/],
    [[bundle('nowhere')], 'x\n', /^error: no bundle at ".*nowhere": expected a directory holding manifest.json/],
    [[bundle('dates_tiny')], Buffer.from([0x61, 0x0a, 0x62, 0xc3, 0x0a]), /^error: stdin line 2 is not valid UTF-8 \(at byte 2\); convert the input to UTF-8\n$/],
  ];
  for (const [args, input, expected] of cases) {
    const result = runCli(args, input);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, expected);
    assert.equal(result.stderr.split('\n').length, 2);
  }
  const dir = copyBundle('dates_tiny');
  editManifest(dir, (m) => { m.format = 'x'; });
  assert.match(runCli([dir], 'x\n').stderr, /^error: manifest.json: format must be "seq2seq-edge\/1", not "x"; this runtime reads format 'seq2seq-edge\/1': re-export/);
});

test('usage errors exit with status 2', () => {
  for (const args of [[], [bundle('dates_tiny'), '--max-steps', 'many'], [bundle('dates_tiny'), '--bogus'],
    [bundle('dates_tiny'), 'extra'], [bundle('dates_tiny'), '--mode']]) {
    const result = runCli(args, '');
    assert.equal(result.status, 2, args.join(' '));
    assert.match(result.stderr, /^usage: node cli.js BUNDLE/);
  }
});

test('stdin lines are read in linear time: a long line is joined once, not at every chunk', async () => {
  // Issue 31: a 40 MB line took 15 s and 2.2 GB when every chunk was concatenated onto the pending bytes.
  const chunk = Buffer.alloc(1024, 'a');
  async function* input() {
    for (let i = 0; i < 2000; i++) yield chunk; // one 2 MB line, then a short one
    yield Buffer.from('\nb\n');
  }
  const concat = Buffer.concat;
  let copied = 0;
  Buffer.concat = (list, ...rest) => {
    copied += list.reduce((n, b) => n + b.length, 0);
    return concat.call(Buffer, list, ...rest);
  };
  const blocks = [];
  try {
    for await (const block of lineBlocks(input(), 4096)) blocks.push(block);
  } finally {
    Buffer.concat = concat;
  }
  assert.deepEqual(blocks.map((b) => b.map((line) => line.length)), [[2000 * 1024, 1]]);
  assert.ok(copied <= 2 * 2000 * 1024 + 16, `copied ${copied} bytes for a 2 MB line`); // was about 2 GB
});
