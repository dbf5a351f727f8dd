'use strict';
/** Texts are encoded as the Python Vocabulary encodes them, and bad input is refused with its messages. */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { load, InputError, BundleError } = require('..');
const { bundle, copyBundle, editManifest } = require('./helpers');

const DATES_KNOWN = ' ,-.0123456789ADFJMNOSTWabcdefghijklmnopqrstuvwxyzáäåçéìöû'.split('')
  .map((s) => JSON.stringify(s)).join(' ');

test('an unknown symbol is refused with its position, the text and the known symbols', async () => {
  const model = await load(bundle('dates_tiny'));
  await assert.rejects(model.generateText(['14 juillet 2023', '14 ~ 2023']), {
    name: 'UnknownTokenError',
    code: 'unknown_token',
    message: `"~" at position 3 of "14 ~ 2023" is not in the model's vocabulary; known symbols: ${DATES_KNOWN}. `
      + 'Remove or replace it',
  });
  const long = `${'1'.repeat(50)}😀${'2'.repeat(50)}`;
  await assert.rejects(model.generateText([long]), (e) => e instanceof InputError && e.message.startsWith(
    `"😀" at position 50 of ..."${'1'.repeat(30)}😀${'2'.repeat(29)}"... (a text of 101 characters) is not in`));
});

test('empty input is refused as the Python runtime refuses it', async () => {
  const model = await load(bundle('dates_tiny'));
  const cases = [
    [['ok 1', ''], 'item 1 is an empty string; every input needs at least one symbol'],
    [[' \t\u3000'], 'item 0 is an empty string; every input needs at least one symbol'],
    ['14 juillet 2023', 'expected a list of strings, got a single string; wrap it: [text]'],
  ];
  for (const [texts, message] of cases) await assert.rejects(model.generateText(texts), { name: 'InputError', message });
  await assert.rejects(model.generateText([3]), { name: 'InputError', message: 'item 0 is number, expected str' });
  assert.deepEqual(await model.generateText([]), []); // an empty batch, as in the Python runtime
  await assert.rejects(model.generateText([], { mode: 'turbo' }), { name: 'InputError' }); // still checked
});

test('on_unknown "unk" maps unknown symbols to the unk id instead', async () => {
  const dir = copyBundle('dates_tiny');
  editManifest(dir, (m) => { m.source.vocabulary.on_unknown = 'unk'; });
  const model = await load(dir);
  const [out] = await model.generateText(['14 ~ 2023']);
  assert.equal(typeof out, 'string');
});

test('a separator splits symbols; a text of separators only is an empty input', async () => {
  const dir = copyBundle('dates_tiny');
  editManifest(dir, (m) => { m.source.vocabulary.separator = ','; });
  const commas = await load(dir);
  const plain = await load(bundle('dates_tiny'));
  assert.deepEqual(await commas.generateText(['3,,, ,m,e,i, ,1,9,6,1']), await plain.generateText(['3 mei 1961']));
  await assert.rejects(commas.generateText([',,,']), {
    name: 'InputError', message: 'source: sequences have no time steps; pass at least one token each' });
  await assert.rejects(commas.generateText([',,,', '1,4']), {
    name: 'InputError',
    message: 'lengths: sequence 0 has length 0; every length must be in [1, 2] (a row of only padding is an empty input)',
  });
});

test('threads must be a positive integer', async () => {
  for (const threads of [0, -1, 1.5, '2']) {
    await assert.rejects(load(bundle('dates_tiny'), { threads }), InputError);
  }
  const most = 4 * require('node:os').availableParallelism();
  await assert.rejects(load(bundle('dates_tiny'), { threads: 2 ** 31 - 1 }), {
    name: 'InputError', message: `threads must be at most ${most} (4 per core of this machine), got ${2 ** 31 - 1}`,
  });
  await assert.rejects(load(bundle('nowhere')), BundleError);
});

test('a source longer than MAX_SOURCE_STEPS is refused with the cap, as in Python', async () => {
  const model = await load(bundle('dates_tiny'));
  await assert.rejects(model.generateText(['3 mei 1961', '1'.repeat(4097)]), {
    name: 'InputError',
    message: 'item 1 has 4097 tokens; a source has at most 4096 (MAX_SOURCE_STEPS): split it into shorter sources',
  });
  const sine = await load(bundle('sine_tiny'));
  const long = [Array.from({ length: 5000 }, () => [0, 0])];
  await assert.rejects(sine.generateFeatures(long), {
    name: 'InputError',
    message: 'source: each row has 5000 steps; a source has at most 4096 (MAX_SOURCE_STEPS): split it into shorter '
      + 'sources',
  });
});
