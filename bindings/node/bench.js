#!/usr/bin/env node
'use strict';
/**
 * node bench.js BUNDLE [--mode M] [--inputs FILE] [--repeat R]
 *
 * Microseconds per generated token of greedy decoding at batch 1 (one generateText call per text, one
 * onnxruntime thread), after a warm-up pass: the best of R timed passes over the inputs. Inputs: FILE (one
 * text per line), else 50 texts drawn from the bundle's source symbols with a fixed seed. A generated token
 * is one decoder step: each output symbol, plus the end token when the row ended before max_steps.
 * Compare with the Python runtime by timing load(BUNDLE, threads=1).generate_text([text], mode=M) the same way.
 */

const fs = require('node:fs');

const { load } = require('./index');
const { isBlank } = require('./lib/vocab');

function parseArgs(argv) {
  const args = { repeat: 3 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--mode') args.mode = argv[++i];
    else if (argv[i] === '--inputs') args.inputs = argv[++i];
    else if (argv[i] === '--repeat') args.repeat = Number(argv[++i]);
    else rest.push(argv[i]);
  }
  if (rest.length !== 1 || !(Number.isInteger(args.repeat) && args.repeat >= 1)) {
    throw new Error('usage: node bench.js BUNDLE [--mode M] [--inputs FILE] [--repeat R]');
  }
  return { ...args, bundle: rest[0] };
}

/** 50 texts of 5 to 24 source symbols, drawn with a fixed seed (mulberry32). */
function syntheticTexts(vocab, count = 50) {
  const symbols = vocab.tokens.filter((t, i) => !vocab.special.has(i) && !isBlank(t));
  let seed = 12345;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: count }, () => Array.from({ length: 5 + Math.floor(random() * 20) },
    () => symbols[Math.floor(random() * symbols.length)]).join(vocab.separator));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const model = await load(args.bundle, { threads: 1 });
  const mode = args.mode || model.defaultMode;
  const source = model.spec.source.vocabulary;
  const texts = args.inputs
    ? fs.readFileSync(args.inputs, 'utf8').split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => !isBlank(l))
    : syntheticTexts(source);
  let tokens = 0;
  for (const text of texts) { // the warm-up pass, counting each row's decoder steps
    const [ids] = await model.generate([source.encode(text)], undefined, mode);
    tokens += ids.length + (ids.length < model.maxSteps ? 1 : 0);
    await model.generateText([text], { mode });
  }
  let best = Infinity;
  for (let r = 0; r < args.repeat; r++) {
    const start = process.hrtime.bigint();
    for (const text of texts) await model.generateText([text], { mode });
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000);
  }
  console.log(`${args.bundle} mode ${mode}: ${(best / tokens).toFixed(1)} us/token (${texts.length} inputs, `
    + `${tokens} tokens, batch 1, 1 thread, best of ${args.repeat})`);
}

main().catch((error) => {
  process.stderr.write(`error: ${error.message}\n`);
  process.exitCode = 1;
});
