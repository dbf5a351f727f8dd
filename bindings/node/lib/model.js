'use strict';
/**
 * The model object: greedy text decoding, in a fused mode (one graph call runs the whole loop) or in
 * step mode (one decoder_step call per output token, each state fed back by name). A port of the greedy
 * path of runtime/model.py (Seq2SeqModel.generate_text) and runtime/strategies.py (greedy_tokens).
 */

const ort = require('onnxruntime-node');

const { BundleError, InputError } = require('./errors');
const { isBlank } = require('./vocab');
const { STEP_MODE } = require('./manifest');
const { zeros, takeRows, putRows, putPadded, argmaxRows, maskLengths } = require('./tensors');
const features = require('./features');
const { runFused } = require('./fused');

const TOKEN_BUDGET = 1 << 16; // padded source ids per decode chunk (rows x longest row)
// As runtime/model.py: with one thread, encoders that take lengths run rows of very different lengths in
// length-sorted chunks of 8 or more rows (at most 8 calls), since onnxruntime's recurrent ops step every row
// of a call to its longest row.
const ENCODE_CHUNK_ROWS = 8;
const ENCODE_MAX_CHUNKS = 8;
const ENCODE_MIN_SAVING = 0.1;

/**
 * Indices of `lengths` sorted by length, cut into chunks whose rows x longest row stays within `budget`.
 * @param {number[]} lengths
 * @param {number} budget
 * @returns {number[][]}
 */
function lengthChunks(lengths, budget) {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const chunks = [];
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && (end + 1 - start) * lengths[order[end]] <= budget) end++;
    chunks.push(order.slice(start, end));
    start = end;
  }
  return chunks;
}

/**
 * runtime/model.py's encoder_chunks: row indices sorted by length, in chunks of equal size, when that cuts
 * the padded row-steps by ENCODE_MIN_SAVING or more; else null.
 * @param {Int32Array | number[]} lengths
 * @returns {number[][] | null}
 */
function encoderChunks(lengths) {
  const batch = lengths.length;
  if (batch < 2 * ENCODE_CHUNK_ROWS) return null;
  const order = Array.from(lengths, (_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const size = Math.max(ENCODE_CHUNK_ROWS, Math.ceil(batch / ENCODE_MAX_CHUNKS));
  const chunks = [];
  for (let i = 0; i < batch; i += size) chunks.push(order.slice(i, i + size));
  const padded = chunks.reduce((n, c) => n + c.length * lengths[c[c.length - 1]], 0);
  return padded <= (1 - ENCODE_MIN_SAVING) * batch * Math.max(...lengths) ? chunks : null;
}

/** The texts, checked as runtime/inputs.py's check_texts checks them (an empty list is an empty batch). */
function checkTexts(texts) {
  if (typeof texts === 'string') throw new InputError('expected a list of strings, got a single string; wrap it: [text]');
  if (!Array.isArray(texts)) throw new InputError(`expected a list of strings, got ${texts === null ? 'null' : typeof texts}`);
  texts.forEach((text, i) => {
    if (typeof text !== 'string') throw new InputError(`item ${i} is ${text === null ? 'null' : typeof text}, expected str`);
    if (isBlank(text)) throw new InputError(`item ${i} is an empty string; every input needs at least one symbol`);
  });
  return texts;
}

/** A loaded, verified bundle that turns texts into texts. Holds no decode state: calls may overlap. */
class Model {
  /**
   * @param {import('./manifest').Manifest} manifest
   * @param {Map<string, ort.InferenceSession>} sessions
   * @param {unknown} raw manifest.json as plain JSON
   * @param {{threads?: number}} [options] the sessions' intra-op threads (one: the encoder runs in chunks)
   */
  constructor(manifest, sessions, raw, { threads = 1 } = {}) {
    this.spec = manifest;
    this.sessions = sessions;
    this.chunkEncoder = threads === 1;
    /** manifest.json, as plain JSON. */
    this.manifest = raw;
    const m = manifest;
    this.encoderOutputs = [...m.state.filter((s) => s.init === 'encoder').map((s) => s.encoderOutput),
      ...m.constants.map((c) => c.encoderOutput)];
    this.decoderOutputs = [m.io.stepOutput, ...m.state.map((s) => s.output)];
    this.constantNames = new Set(m.constants.map((c) => c.name));
    this.unfedMask = (m.constants.find((c) => !c.decoderInput) || {}).name || null;
  }

  /** @returns {string[]} the decode modes this bundle offers ('step', 'fused', 'fused-int8': those it was exported with) */
  get modes() {
    return Array.from(this.spec.modes.keys());
  }

  /** @returns {string} the mode generateText uses when none is given */
  get defaultMode() {
    return this.spec.defaultMode;
  }

  /** @returns {number} the hard cap on decode length (decode.max_steps) */
  get maxSteps() {
    return this.spec.maxSteps;
  }

  /**
   * Translate texts greedily; one output per text, in order.
   * @param {string[]} texts
   * @param {{mode?: string, maxSteps?: number}} [options] mode: one of `modes` (default: the bundle's
   *   default mode); maxSteps: at most this many output tokens, in [1, decode.max_steps]
   * @returns {Promise<string[]>} one string per text; [] for no texts (mode and maxSteps are checked all the same)
   * @throws {InputError} for an empty text, an unknown symbol (on_unknown "error"), a bad mode or maxSteps
   */
  async generateText(texts, { mode, maxSteps } = {}) {
    if (this.spec.source.kind !== 'tokens') {
      throw new InputError("this bundle's source is real-valued features, not tokens; use generateFeatures()");
    }
    checkTexts(texts);
    this.checkMode(mode);
    this.checkMaxSteps(maxSteps);
    const source = this.spec.source.vocabulary;
    const rows = texts.map((t, i) => {
      const row = source.encode(t);
      features.checkSourceLength(row.length, `item ${i}`, 'tokens');
      return row;
    });
    const results = new Array(rows.length);
    for (const chunk of lengthChunks(rows.map((r) => r.length), TOKEN_BUDGET)) {
      const ids = await this.generate(chunk.map((i) => rows[i]), maxSteps, mode);
      chunk.forEach((i, k) => { results[i] = ids[k]; });
    }
    return results.map((ids) => this.spec.target.vocabulary.decode(ids));
  }

  /**
   * Continue raw windows (a forecast): one array (steps) of arrays (features) a row, in the data's units. The
   * decoder starts from `firstInput` ((batch, features) raw values) or as the manifest's decode.first_input says
   * (the last source step, a {"rule": "source_step"} over it, or zeros), as the Python runtime's generate.
   * @param {number[][][]} windows (batch, time, features)
   * @param {{mode?: string, maxSteps?: number, firstInput?: number[][]}} [options]
   * @returns {Promise<number[][][]>}
   */
  async generateFeatures(windows, options = {}) {
    if (this.spec.source.kind !== 'features') {
      throw new InputError("this bundle's source is tokens, not real-valued features; use generateText()");
    }
    return features.generateFeatures(this, windows, options);
  }

  /**
   * One text decoded greedily by the step graph, with the attention each output step paid to each source
   * symbol (as `seq2seq-edge run --show-attention` prints it).
   * @param {string} text
   * @param {{maxSteps?: number}} [options]
   * @returns {Promise<{output: string, source: string[], steps: string[], weights: number[][]}>} `source`: the
   *   symbols as written; `steps`: the output symbols (with `</s>` when the decode ended); `weights[i][j]`:
   *   step i's weight on source symbol j
   */
  async alignment(text, { maxSteps } = {}) {
    const m = this.spec;
    if (m.io.attention === null) throw new InputError('this bundle has no attention: it was trained without it');
    if (!m.modes.has(STEP_MODE)) {
      throw new InputError('the alignment needs the step graph (decoder_step.onnx), which this bundle was exported '
        + 'without (--modes)');
    }
    checkTexts([text]);
    const [source, target] = [m.source.vocabulary, m.target.vocabulary];
    const row = source.encode(text);
    features.checkSourceLength(row.length, 'item 0', 'tokens');
    const steps = this.checkMaxSteps(maxSteps);
    let state = await this.encode([row], STEP_MODE);
    let x = Int32Array.of(target.startId);
    const ids = [];
    const weights = [];
    let ended = false;
    for (let step = 0; step < steps && !ended; step++) {
      const feed = { ...state, [m.io.stepInput]: new ort.Tensor('int32', x, [1, 1]) };
      if (this.unfedMask !== null) delete feed[this.unfedMask]; // one row: no padding to keep out
      const values = await this.sessions.get('decoder_step').run(feed, [...this.decoderOutputs, m.io.attention]);
      const w = Array.from(values[m.io.attention].data).slice(0, row.length);
      weights.push(source.reverse ? w.reverse() : w);
      const token = argmaxRows(this.checkStepOutput(values[m.io.stepOutput], 1))[0];
      ended = token === target.endId;
      if (!ended) ids.push(token);
      const next = {};
      m.state.forEach((s) => { next[s.name] = values[s.output]; });
      for (const name of this.constantNames) next[name] = state[name];
      state = next;
      x = Int32Array.of(token);
    }
    const symbols = row.map((id) => source.tokens[id]);
    return { output: target.decode(ids), source: source.reverse ? symbols.reverse() : symbols,
      steps: [...ids.map((id) => target.tokens[id]), ...(ended ? ['</s>'] : [])], weights };
  }

  /** Greedy decode of encoded rows: one id array per row, without the end id ([] for no rows, no graph run). */
  async generate(rows, maxSteps, mode) {
    mode = this.checkMode(mode);
    const steps = this.checkMaxSteps(maxSteps);
    if (rows.length === 0) return [];
    const state = await this.encode(rows, mode);
    const vocab = this.spec.target.vocabulary;
    if (vocab.startId === null) throw new InputError('this bundle\'s target has no start_id to begin decoding with');
    const start = new Int32Array(rows.length).fill(vocab.startId);
    if (mode !== STEP_MODE) return this.fusedTokens(mode, state, start, steps, vocab.endId);
    return this.greedySteps(state, start, steps, vocab.endId);
  }

  checkMode(mode) {
    if (mode === undefined || mode === null) return this.spec.defaultMode;
    if (!this.spec.modes.has(mode)) {
      throw new InputError(`mode must be one of ${JSON.stringify(this.modes)} for this bundle, got ${JSON.stringify(mode)}`);
    }
    return mode;
  }

  checkMaxSteps(maxSteps) {
    const cap = this.spec.maxSteps;
    if (maxSteps === undefined || maxSteps === null) return cap;
    if (!(Number.isInteger(maxSteps) && maxSteps >= 1 && maxSteps <= cap)) {
      throw new InputError(`max_steps must be an integer in [1, ${cap}] (the bundle's decode.max_steps cap), `
        + `got ${typeof maxSteps === 'string' ? JSON.stringify(maxSteps) : String(maxSteps)}`);
    }
    return maxSteps;
  }

  /** Right-padded ids (batch, time) and lengths (batch,), as Vocabulary.pad, checked as encode() checks them. */
  pad(rows) {
    const vocab = this.spec.source.vocabulary;
    const time = Math.max(0, ...rows.map((r) => r.length));
    if (time === 0) throw new InputError('source: sequences have no time steps; pass at least one token each');
    const bad = rows.findIndex((r) => r.length < 1);
    if (bad >= 0) {
      throw new InputError(`lengths: sequence ${bad} has length 0; every length must be in [1, ${time}] (a row `
        + 'of only padding is an empty input)');
    }
    const ids = new Int32Array(rows.length * time).fill(vocab.padId === null ? 0 : vocab.padId);
    rows.forEach((r, i) => ids.set(r, i * time));
    return { ids: new ort.Tensor('int32', ids, [rows.length, time]), lengths: Int32Array.from(rows, (r) => r.length) };
  }

  /** The decoder's initial state: each state by name, and an attention decoder's constants. */
  async encode(rows, mode) {
    const m = this.spec;
    const encoder = this.sessions.get(m.modes.get(mode).encoder);
    const { ids, lengths } = this.pad(rows);
    if (m.io.padding === 'lengths') {
      const chunks = this.chunkEncoder ? encoderChunks(lengths) : null;
      if (chunks !== null) return this.encodeGroups(encoder, rows, chunks, true);
      const length = new ort.Tensor('int32', lengths, [rows.length]);
      return this.encodeFeed(encoder, { [m.io.source]: ids, [m.io.sourceLength]: length }, rows.length);
    }
    if (m.io.padding === 'mask') return this.encodeFeed(encoder, { [m.io.source]: ids }, rows.length);
    return this.encodeByLength(encoder, rows);
  }

  async encodeFeed(encoder, feed, batch) {
    const m = this.spec;
    const out = await encoder.run(feed, this.encoderOutputs);
    const state = {};
    for (const s of m.state) state[s.name] = s.init === 'encoder' ? out[s.encoderOutput] : zeros([batch, s.size]);
    for (const c of m.constants) state[c.name] = out[c.encoderOutput];
    return state;
  }

  /** Encoders that see padding as input: encode each group of equal-length rows unpadded. */
  async encodeByLength(encoder, rows) {
    const groups = [...new Set(rows.map((r) => r.length))].sort((a, b) => a - b)
      .map((length) => rows.map((r, i) => i).filter((i) => rows[i].length === length));
    return this.encodeGroups(encoder, rows, groups, false);
  }

  /**
   * Each group of rows encoded alone, cut to its longest row (with its lengths when `withLengths`: the
   * length-sorted chunks of encoderChunks); constants padded with zeros to the longest row.
   */
  async encodeGroups(encoder, rows, groups, withLengths) {
    const m = this.spec;
    const longest = Math.max(...rows.map((r) => r.length));
    const state = {};
    for (const s of m.state) state[s.name] = zeros([rows.length, s.size]);
    for (const c of m.constants) state[c.name] = zeros(c.size === null ? [rows.length, longest] : [rows.length, longest, c.size]);
    for (const group of groups) {
      const length = Math.max(...group.map((i) => rows[i].length));
      const ids = new Int32Array(group.length * length).fill(m.source.vocabulary.padId ?? 0);
      group.forEach((i, k) => ids.set(rows[i], k * length));
      const feed = { [m.io.source]: new ort.Tensor('int32', ids, [group.length, length]) };
      if (withLengths) {
        feed[m.io.sourceLength] = new ort.Tensor('int32', Int32Array.from(group, (i) => rows[i].length), [group.length]);
      }
      const part = await this.encodeFeed(encoder, feed, group.length);
      for (const [name, value] of Object.entries(part)) {
        if (!this.constantNames.has(name)) putRows(state[name], value, group);
        else putPadded(state[name], value, group);
      }
    }
    return state;
  }

  /**
   * A fused mode: the whole loop in one call (one per source length when the step graph takes no mask, see
   * fused.js); rows cut at the end id.
   */
  async fusedTokens(mode, state, start, steps, endId) {
    const first = new ort.Tensor('int32', start, [start.length]);
    const { data, dims: [run, batch] } = await runFused(this, mode, state, first, steps, endId); // (steps run, batch)
    const size = this.spec.target.vocabulary.tokens.length;
    const bad = data.find((id) => id < 0 || id >= size);
    if (bad !== undefined) {
      const file = this.manifest.graphs[this.spec.modes.get(mode).decoder].file;
      throw new BundleError(`${file}: the graph emitted token id ${bad}, outside the target vocabulary's ids 0 to `
        + `${size - 1}; the bundle is corrupt or was altered: export it again`);
    }
    return Array.from({ length: batch }, (_, b) => {
      const row = [];
      for (let t = 0; t < run; t++) {
        const id = data[t * batch + b];
        if (id === endId) break;
        row.push(id);
      }
      return row;
    });
  }

  /** Step mode: argmax of each step's output fed back; each row stops at its end id, all stop at `steps`. */
  async greedySteps(state, start, steps, endId) {
    const batch = start.length;
    let x = start;
    const finished = new Array(batch).fill(false);
    const rows = Array.from({ length: batch }, () => []);
    for (let step = 0; step < steps; step++) {
      const [output, next] = await this.step(x, state);
      state = next;
      const tokens = argmaxRows(output);
      tokens.forEach((token, b) => {
        if (finished[b]) return;
        if (token === endId) finished[b] = true;
        else rows[b].push(token);
      });
      x = tokens;
      if (finished.every(Boolean)) break;
    }
    return rows;
  }

  /** One decoder_step call: (output, next state); constants pass through unchanged. */
  async step(x, state) {
    const m = this.spec;
    const feed = { ...state, [m.io.stepInput]: new ort.Tensor('int32', x, [x.length, 1]) };
    const values = await this.runDecoder(feed);
    const next = {};
    m.state.forEach((s) => { next[s.name] = values[s.output]; });
    for (const name of this.constantNames) next[name] = state[name];
    return [this.checkStepOutput(values[m.io.stepOutput], x.length), next];
  }

  /** The step graph's logits must be (rows, target tokens): wider ones would let argmax pick an id outside
   * the vocabulary. */
  checkStepOutput(output, rows) {
    const width = this.spec.target.vocabulary.tokens.length;
    const [r, w] = output.dims;
    if (output.dims.length !== 2 || r !== rows || w !== width) {
      const file = this.manifest.graphs[this.spec.modes.get(STEP_MODE).decoder].file;
      throw new BundleError(`${file}: the graph's step output came back with shape (${output.dims.join(', ')}), not `
        + `(${rows}, ${width}) (a row per input, a value per target token); the bundle is corrupt or was altered: `
        + 'export it again');
    }
    return output;
  }

  /**
   * One decoder_step call. When the step graph does not take the source mask, rows of equal source length
   * run together, their constants cut to that length (so padding never reaches attention).
   */
  async runDecoder(feed) {
    const decoder = this.sessions.get('decoder_step');
    if (this.unfedMask === null) return decoder.run(feed, this.decoderOutputs);
    feed = { ...feed };
    const mask = feed[this.unfedMask];
    delete feed[this.unfedMask];
    const lengths = maskLengths(mask, this.unfedMask);
    const [batch, time] = mask.dims;
    if (lengths.every((l) => l === time)) return decoder.run(feed, this.decoderOutputs);
    const results = {};
    for (const length of [...new Set(lengths)].sort((a, b) => a - b)) {
      const rows = lengths.map((_, i) => i).filter((i) => lengths[i] === length);
      const part = {};
      for (const [name, value] of Object.entries(feed)) {
        part[name] = this.constantNames.has(name) ? takeRows(value, rows, length) : takeRows(value, rows);
      }
      const values = await decoder.run(part, this.decoderOutputs);
      for (const name of this.decoderOutputs) {
        const v = values[name];
        results[name] ||= new ort.Tensor(v.type, new v.data.constructor(batch * (v.size / rows.length)),
          [batch, ...v.dims.slice(1)]);
        putRows(results[name], v, rows);
      }
    }
    return results;
  }
}

module.exports = { encoderChunks, Model, lengthChunks, TOKEN_BUDGET };
