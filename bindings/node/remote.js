'use strict';
/**
 * A model served by `seq2seq-edge serve` (or any Open Inference Protocol server), called with fetch: the same
 * generateText as a loaded bundle, decoded on the server (which batches concurrent callers).
 *
 *   const { connect } = require('seq2seq-edge-node');
 *   const model = await connect('http://127.0.0.1:8000', 'bundle');
 *   await model.generateText(['14 juillet 2023']); // ['2023-07-14']
 */

const { InputError, Seq2SeqEdgeError } = require('./lib/errors');

class RemoteModel {
  constructor(base, name, metadata) {
    this.base = base;
    this.name = name;
    this.metadata = metadata;
  }

  /**
   * Decode texts on the server: one string per text, in order. `parameters` are the request's decode options
   * (strategy, beam_width, n_best, temperature, top_k, top_p, seed, length_penalty, max_steps, mode).
   */
  async generateText(texts, parameters = {}) {
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) {
      throw new InputError('expected a list of strings');
    }
    if (texts.length === 0) return [];
    const body = { inputs: [{ name: 'source', datatype: 'BYTES', shape: [texts.length], data: texts }], parameters };
    const answer = await call(`${this.base}/v2/models/${encodeURIComponent(this.name)}/infer`, body);
    return answer.outputs.find((o) => o.name === 'output').data;
  }
}

async function call(url, body) {
  const response = await fetch(url, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await response.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Seq2SeqEdgeError(`${url}: answered ${response.status} with a body that is not JSON`);
  }
  if (!response.ok) {
    const Kind = response.status >= 400 && response.status < 500 ? InputError : Seq2SeqEdgeError;
    throw new Kind(`${url}: ${response.status} ${String(data.error).slice(0, 300)}`);
  }
  return data;
}

/** The model `name` served at `base` (its metadata is fetched once: an unknown model fails here). */
async function connect(base, name) {
  base = String(base).replace(/\/+$/, '');
  const metadata = await call(`${base}/v2/models/${encodeURIComponent(name)}`);
  return new RemoteModel(base, name, metadata);
}

module.exports = { connect, RemoteModel };
