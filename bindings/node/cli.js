#!/usr/bin/env node
'use strict';
/**
 * node cli.js BUNDLE [--mode M] [--max-steps N] [--threads N]
 *
 * Reads one text per line on stdin (UTF-8; a line ends at \n, a trailing \r is dropped, blank lines are
 * skipped) and prints one output per line, in order: what `seq2seq-edge run BUNDLE` prints for the same
 * input (greedy decoding). Any error is one line `error: <message>` on stderr and exit status 1; a usage
 * error exits with 2. A real-valued bundle (a forecaster) reads JSON windows (batch, time, features) on stdin
 * and prints the forecasts (batch, steps, features) as one JSON line, started as the manifest says.
 */

const { load, Seq2SeqEdgeError, InputError } = require('./index');
const { isBlank } = require('./lib/vocab');

const USAGE = 'usage: node cli.js BUNDLE [--mode M] [--max-steps N] [--threads N] < texts';
const BLOCK = 4096; // lines decoded at a time: output starts early, memory stays bounded

class UsageError extends Error {}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The offset of the byte at which `bytes` stops being valid UTF-8. */
function firstBadByte(bytes) {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  for (let i = 0; i < bytes.length; i++) {
    try {
      decoder.decode(bytes.subarray(i, i + 1), { stream: true });
    } catch {
      return i;
    }
  }
  return bytes.length;
}

/** argparse's type=int: an integer, with optional sign and surrounding spaces */
function integer(flag, text) {
  if (!/^\s*[-+]?\d+\s*$/.test(text)) throw new UsageError(`${flag}: invalid int value: '${text}'`);
  return Number(text);
}

/** @param {string[]} argv @returns {{bundle: string, mode?: string, maxSteps?: number, threads: number}} */
function parseArgs(argv) {
  const args = { threads: 1 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].startsWith('--') && argv[i].includes('=') ? argv[i].split(/=(.*)/s) : [argv[i]];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--mode') args.mode = value();
    else if (flag === '--max-steps') args.maxSteps = integer(flag, value());
    else if (flag === '--threads') args.threads = integer(flag, value());
    else if (flag === '-h' || flag === '--help') throw new UsageError('');
    else if (flag.startsWith('-') && flag !== '-') throw new UsageError(`unrecognized arguments: ${flag}`);
    else rest.push(flag);
  }
  if (rest.length !== 1) throw new UsageError(rest.length ? `unrecognized arguments: ${rest.slice(1).join(' ')}` : 'the following arguments are required: BUNDLE');
  args.bundle = rest[0];
  return args;
}

/**
 * Non-blank stdin lines in blocks of at most `size`, without their line ending (\n or \r\n).
 * @param {AsyncIterable<Buffer>} input
 * @returns {AsyncGenerator<string[]>}
 */
async function* lineBlocks(input, size) {
  let number = 0;
  let block = [];
  const take = (bytes) => {
    number += 1;
    let line;
    try {
      line = UTF8.decode(bytes);
    } catch {
      throw new InputError(`stdin line ${number} is not valid UTF-8 (at byte ${firstBadByte(bytes)}); convert the `
        + 'input to UTF-8');
    }
    if (line.endsWith('\n')) line = line.slice(0, -1);
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (!isBlank(line)) block.push(line);
  };
  // The unfinished line's pieces, joined once when its newline comes: joining them at every chunk copied a
  // long line again and again (a 40 MB line took 15 s and 2.2 GB).
  let pending = [];
  for await (const chunk of input) {
    let start = 0;
    for (let end = chunk.indexOf(10); end >= 0; end = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, end + 1);
      take(pending.length ? Buffer.concat([...pending, piece]) : piece);
      pending = [];
      start = end + 1;
      if (block.length === size) {
        yield block;
        block = [];
      }
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length) take(Buffer.concat(pending));
  if (block.length) yield block;
}

/** All of stdin as JSON windows (batch, time, features), for a real-valued bundle. */
async function readWindows(input) {
  const chunks = [];
  for await (const chunk of input) chunks.push(chunk);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf-8'));
  } catch (error) {
    throw new InputError(`stdin: this bundle forecasts real values: pass JSON windows (batch, time, features) (${
      error.message})`);
  }
}

const NAMED = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` with control characters (C0, DEL, C1, U+2028, U+2029) written as escapes (`\x1b`, `\n`, `\u2028`), as
 * the Python CLI prints them: tokens from a bundle must not drive the terminal or split one output into lines.
 */
function printable(text) {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => NAMED[c]
    || (c.charCodeAt(0) < 0x100 ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`
      : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** Write to stdout, waiting when the pipe is full. */
function write(text) {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

async function main(argv) {
  let args;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (!error.message) { // --help
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    process.stderr.write(`${USAGE}\nerror: ${error.message}\n`);
    return 2;
  }
  try {
    const model = await load(args.bundle, { threads: args.threads });
    if (model.spec.source.kind === 'features') {
      await write(`${JSON.stringify(await model.generateFeatures(await readWindows(process.stdin),
        { mode: args.mode, maxSteps: args.maxSteps }))}\n`);
      return 0;
    }
    for await (const block of lineBlocks(process.stdin, BLOCK)) {
      const outputs = await model.generateText(block, { mode: args.mode, maxSteps: args.maxSteps });
      await write(outputs.map((o) => `${printable(o)}\n`).join(''));
    }
    return 0;
  } catch (error) {
    if (error.code === 'EPIPE') return 141; // the reader went away (`... | head -1`): stop quietly
    const message = error instanceof Seq2SeqEdgeError || error.code !== undefined ? error.message : String(error);
    process.stderr.write(`error: ${message.replace(/\r?\n/g, ' ')}\n`); // one line, whatever onnxruntime said
    return 1;
  }
}

if (require.main === module) {
  process.stdout.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(141);
  });
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}

module.exports = { main, parseArgs, lineBlocks };
