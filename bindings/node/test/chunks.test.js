'use strict';
/** With one thread, rows of very different lengths encode in length-sorted chunks, as runtime/model.py does. */

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { load } = require('..');
const { encoderChunks } = require('../lib/model');
const { bundle } = require('./helpers');

test('encoderChunks: the rule of runtime/model.py encoder_chunks', () => {
  const mixed = Array.from({ length: 32 }, (_, i) => 8 + ((i * 7) % 17)); // 8..24
  const chunks = encoderChunks(mixed);
  assert.deepEqual(chunks.map((c) => c.length), [8, 8, 8, 8]);
  const flat = chunks.flat();
  assert.deepEqual([...flat].sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i));
  for (let k = 1; k < flat.length; k++) assert.ok(mixed[flat[k - 1]] <= mixed[flat[k]]);
  const many = Array.from({ length: 200 }, (_, i) => mixed[i % 32]);
  assert.deepEqual(encoderChunks(many).map((c) => c.length), Array(8).fill(25)); // at most eight calls
  assert.equal(encoderChunks(mixed.slice(0, 15)), null); // fewer than two chunks of eight rows
  assert.equal(encoderChunks(Array(32).fill(12)), null); // nothing to save
  assert.equal(encoderChunks([...Array(31).fill(10), 9]), null); // under 10% to save
});

const MONTHS = ['May', 'juillet', 'Juli', 'mei', 'September'];
const TEXTS = Array.from({ length: 40 }, (_, i) => `${i + 1} ${MONTHS[i % 5]} ${1950 + 2 * i}`);
TEXTS[3] = 'Saturday 1 September 1984';

for (const name of ['dates_tiny', 'dates_attention_tiny']) {
  test(`${name}: chunked encoder calls give what one call gives`, async () => {
    const chunked = await load(bundle(name)); // one thread: chunks
    const whole = await load(bundle(name), { threads: 2 });
    assert.equal(chunked.chunkEncoder, true);
    assert.equal(whole.chunkEncoder, false);
    const rows = TEXTS.map((t) => chunked.spec.source.vocabulary.encode(t));
    for (const mode of chunked.modes) {
      const encoder = chunked.sessions.get(chunked.spec.modes.get(mode).encoder);
      const batches = [];
      const run = encoder.run.bind(encoder);
      encoder.run = (feed, names) => {
        batches.push(Object.values(feed)[0].dims[0]);
        return run(feed, names);
      };
      try {
        const a = await chunked.encode(rows, mode);
        assert.deepEqual(batches, [8, 8, 8, 8, 8], mode);
        const b = await whole.encode(rows, mode);
        const tolerance = mode.endsWith('int8') ? 0.05 : 1e-6; // int8: each call quantises its own rows
        for (const [key, value] of Object.entries(b)) {
          assert.deepEqual(a[key].dims, value.dims, key);
          value.data.forEach((v, i) => assert.ok(Math.abs(a[key].data[i] - v) <= tolerance, `${mode} ${key}[${i}]`));
        }
        if (!mode.endsWith('int8')) {
          assert.deepEqual(await chunked.generateText(TEXTS, { mode }), await whole.generateText(TEXTS, { mode }));
        }
      } finally {
        encoder.run = run;
      }
    }
  });
}
