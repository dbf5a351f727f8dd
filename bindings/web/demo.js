'use strict';
/*
 * The demo page: the Node binding's own modules (bindings/node/lib, served at /lib/) run here unchanged,
 * loaded by a small CommonJS loader, with onnxruntime-web in place of onnxruntime-node. The bundle is
 * fetched from /bundle/ and verified as the Node and Python runtimes verify it (format and bounds, each
 * graph's sha256, no external data, every tensor's name, dtype and shape), then decodes as the person types.
 */

// Every module of bindings/node/lib that the page runs (tests/test_demo.py checks this list against the folder).
const LIB_MODULES = ['errors', 'schema', 'vocab', 'manifest', 'onnx_scan', 'tensors', 'fused', 'features', 'model', 'bundle'];

/**
 * A CommonJS `require` over sources fetched beforehand; Node's built-ins that the page never calls are empty,
 * and lib/schema.js's manifest.schema.json is the copy served beside the modules.
 */
function makeRequire(sources, ort, schema) {
  const builtins = {
    'onnxruntime-node': ort, 'node:fs': {}, 'node:crypto': {}, 'node:path': {}, './manifest.schema.json': schema,
  };
  const cache = new Map();
  function require(name) {
    if (name in builtins) return builtins[name];
    const key = name.replace(/^\.\//, '').replace(/\.js$/, '');
    if (!(key in sources)) throw new Error(`demo: module ${name} is not served`);
    if (!cache.has(key)) {
      const module = { exports: {} };
      cache.set(key, module);
      new Function('module', 'exports', 'require', sources[key])(module, module.exports, require);
    }
    return cache.get(key).exports;
  }
  return require;
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Fetch and verify the bundle at `base` with lib/bundle.js's own checks, as openBundle does on a folder. */
async function openBundle(require, base) {
  const bundle = require('./bundle');
  const manifest = bundle.manifestFromBytes(await fetchBytes(`${base}manifest.json`), 'manifest.json');
  const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  const sessions = await bundle.openGraphs(manifest, (spec) => fetchBytes(base + spec.file), sha256Hex, options);
  const { Model } = require('./model');
  return new Model(manifest, sessions, manifest.raw);
}

function drawAlignment(element, alignment) {
  const table = document.createElement('table');
  const head = table.insertRow();
  head.insertCell().textContent = '';
  for (const symbol of alignment.source) {
    const th = document.createElement('th');
    th.textContent = symbol.trim() ? symbol : '␣';
    head.appendChild(th);
  }
  alignment.steps.forEach((symbol, i) => {
    const row = table.insertRow();
    const th = document.createElement('th');
    th.textContent = symbol;
    row.appendChild(th);
    for (const w of alignment.weights[i] || []) {
      const cell = row.insertCell();
      const shade = Math.round(255 * (1 - w));
      cell.style.background = `rgb(${shade},${shade},${shade})`;
      cell.title = w.toFixed(3);
    }
  });
  element.replaceChildren(table);
}

async function main() {
  const $ = (id) => document.getElementById(id);
  const ort = window.ort;
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = 1;
  const sources = {};
  await Promise.all(LIB_MODULES.map(async (name) => {
    sources[name] = new TextDecoder().decode(await fetchBytes(`/lib/${name}.js`));
  }));
  const schema = JSON.parse(new TextDecoder().decode(await fetchBytes('/lib/manifest.schema.json')));
  const require = makeRequire(sources, ort, schema);
  const model = await openBundle(require, '/bundle/');
  const attention = model.spec.io.attention !== null && model.modes.includes('step');
  $('bundle-name').textContent = `${model.manifest.task || 'bundle'} (${model.defaultMode})`;
  $('status').textContent = `Ready: decode modes ${model.modes.join(', ')}; decoding in this page with onnxruntime-web.`;
  const input = $('source');
  input.disabled = false;
  input.focus();
  let latest = 0;
  input.addEventListener('input', async () => {
    const text = input.value;
    const call = ++latest;
    if (!text.trim()) {
      $('output').textContent = '';
      $('error').textContent = '';
      $('alignment').replaceChildren();
      return;
    }
    try {
      const started = performance.now();
      const [output] = await model.generateText([text]);
      const ms = performance.now() - started;
      const shown = attention ? await model.alignment(text) : null;
      if (call !== latest) return; // a newer keystroke's result is on its way
      $('output').dataset.for = text;
      $('output').textContent = output;
      $('error').textContent = '';
      $('timing').textContent = `${ms.toFixed(1)} ms`;
      if (shown) drawAlignment($('alignment'), shown);
    } catch (error) {
      if (call !== latest) return;
      $('output').dataset.for = text;
      $('output').textContent = '';
      $('error').textContent = error.message;
      $('alignment').replaceChildren();
    }
  });
  window.seq2seqEdge = { model }; // for the tests and for measuring from the console
  document.body.dataset.ready = 'true';
}

main().catch((error) => {
  document.getElementById('status').textContent = `The bundle could not be loaded: ${error.message}`;
  document.body.dataset.ready = 'error';
});
