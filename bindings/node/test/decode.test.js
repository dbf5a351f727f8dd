'use strict';
/** The committed bundles decode to their golden outputs in every mode; options behave as documented. */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { load, InputError } = require('..');
const { GOLDEN, BUNDLES, bundle, fusedOnlyBundle } = require('./helpers');

for (const [name, key] of Object.entries(BUNDLES)) {
  test(`${name}: golden outputs in every mode`, async () => {
    const model = await load(bundle(name));
    const { inputs, outputs } = GOLDEN[key];
    assert.ok(model.modes.includes(model.defaultMode));
    assert.deepEqual(await model.generateText(inputs), outputs);
    for (const mode of model.modes) assert.deepEqual(await model.generateText(inputs, { mode }), outputs, mode);
  });

  test(`${name}: a row decodes alone as in a batch, in any order`, async () => {
    const model = await load(bundle(name));
    const { inputs, outputs } = GOLDEN[key];
    for (const mode of model.modes) {
      assert.deepEqual(await model.generateText([...inputs].reverse(), { mode }), [...outputs].reverse());
      assert.deepEqual(await model.generateText([inputs[1]], { mode }), [outputs[1]]);
    }
  });
}

test('modes, default mode and manifest are exposed', async () => {
  const model = await load(bundle('dates_attention_tiny'), { threads: 2 });
  assert.deepEqual(model.modes, ['step', 'fused', 'fused-int8']);
  assert.equal(model.defaultMode, model.manifest.decode.default_mode);
  assert.equal(model.manifest.format, 'seq2seq-edge/1');
  assert.equal(model.maxSteps, model.manifest.decode.max_steps);
  assert.ok(Object.isFrozen(model.manifest.decode));
});

test('step mode agrees with the fused modes on more inputs', async () => {
  const model = await load(bundle('dates_tiny'));
  const texts = ['1 January 2000', 'Dec 31, 1999', '7 mars 2010', '29. Februar 2024', 'Monday, 1 May 2017', '5 mei 1961'];
  const step = await model.generateText(texts, { mode: 'step' });
  assert.deepEqual(await model.generateText(texts, { mode: 'fused' }), step);
});

test('maxSteps cuts every row at that many tokens, in every mode', async () => {
  const model = await load(bundle('dates_tiny'));
  const { inputs, outputs } = GOLDEN.dates;
  for (const mode of model.modes) {
    assert.deepEqual(await model.generateText(inputs, { mode, maxSteps: 4 }), outputs.map((o) => o.slice(0, 4)));
    assert.deepEqual(await model.generateText(inputs, { mode, maxSteps: model.maxSteps }), outputs);
  }
  for (const bad of [0, model.maxSteps + 1, 2.5, '4']) {
    await assert.rejects(model.generateText(inputs, { maxSteps: bad }), (e) => e instanceof InputError
      && /^max_steps must be an integer in \[1, 19\] \(the bundle's decode.max_steps cap\), got /.test(e.message));
  }
});

test('a bundle without the step graph decodes in its fused modes and refuses step mode', async () => {
  const model = await load(fusedOnlyBundle());
  assert.deepEqual(model.modes, ['fused', 'fused-int8']);
  assert.deepEqual(await model.generateText(GOLDEN.dates.inputs), GOLDEN.dates.outputs);
  await assert.rejects(model.generateText(GOLDEN.dates.inputs, { mode: 'step' }), {
    name: 'InputError', message: 'mode must be one of ["fused","fused-int8"] for this bundle, got "step"', code: 'input',
  });
});

test('an unknown mode is refused with the modes the bundle has', async () => {
  const model = await load(bundle('keras_io_tiny'));
  await assert.rejects(model.generateText(['Go.'], { mode: 'fused' }), {
    name: 'InputError', message: 'mode must be one of ["step"] for this bundle, got "fused"', code: 'input',
  });
});

test('calls may overlap: one loaded model serves concurrent decodes', async () => {
  const model = await load(bundle('dates_attention_tiny'));
  const { inputs, outputs } = GOLDEN.attention;
  const results = await Promise.all(model.modes.map((mode) => model.generateText(inputs, { mode })));
  for (const result of results) assert.deepEqual(result, outputs);
});
