"""Decode time per token of one bundle in the Python runtime, in Node (bindings/node) and in a headless Chromium
(the `seq2seq-edge demo` page, onnxruntime-web): greedy, batch 1, one thread, the same inputs, side by side.

    python tools/bench_bindings.py BUNDLE INPUTS.txt [--mode M] [--repeat 3]

Each engine decodes every input once as a warm-up, then R timed passes (one call per input); the best pass
over the number of decoder steps (output symbols, plus the end token where a row ended) is printed. Needs
`npm ci` in bindings/node and bindings/web, chromium and chromium-driver, selenium.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_us(bundle: str, texts: list[str], mode: str, repeat: int) -> tuple[float, int]:
    from seq2seq_edge.runtime import load

    model = load(bundle, threads=1)
    tokens = 0
    for text in texts:
        ids, lengths = model.source_vocab.encode_batch([text])
        row = model.generate(ids, lengths=lengths, mode=mode)[0]
        tokens += len(row) + (len(row) < model.manifest.max_steps)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for text in texts:
            model.generate_text([text], mode=mode)
        best = min(best, time.perf_counter() - started)
    return best * 1e6 / tokens, tokens


def node_us(bundle: str, inputs: str, mode: str, repeat: int) -> float:
    out = subprocess.run(["node", str(ROOT / "bindings/node/bench.js"), bundle, "--mode", mode, "--inputs", inputs,
                          "--repeat", str(repeat)], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"([\d.]+) us/token", out).group(1))


def browser_us(bundle: str, texts: list[str], mode: str, repeat: int, tokens: int) -> float:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from seq2seq_edge.serve.demo import serve_demo

    urls: list[str] = []
    ready = threading.Event()
    threading.Thread(target=serve_demo, args=(bundle, 0), daemon=True,
                     kwargs={"ready": lambda u: (urls.append(u), ready.set())}).start()
    if not ready.wait(30):
        raise SystemExit("the demo server did not start within 30 s")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(urls[0])
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        browser.set_script_timeout(600)
        ms = browser.execute_async_script("""
            const [texts, mode, repeat, done] = arguments;
            const model = window.seq2seqEdge.model;
            (async () => {
              for (const t of texts) await model.generateText([t], {mode});
              let best = Infinity;
              for (let r = 0; r < repeat; r++) {
                const start = performance.now();
                for (const t of texts) await model.generateText([t], {mode});
                best = Math.min(best, performance.now() - start);
              }
              return best;
            })().then(done, (e) => done(-1));""", texts, mode, repeat)
    finally:
        browser.quit()
    return ms * 1000 / tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("inputs", help="one source text per line")
    parser.add_argument("--mode", help="decode mode (default: the bundle's default)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from seq2seq_edge.runtime import load

    mode = args.mode or load(args.bundle).manifest.default_mode
    texts = [t for t in Path(args.inputs).read_text(encoding="utf-8").split("\n") if t.strip()]
    py, tokens = python_us(args.bundle, texts, mode, args.repeat)
    rows = [("Python runtime (onnxruntime)", py), ("Node (onnxruntime-node)", node_us(args.bundle, args.inputs,
                                                                                      mode, args.repeat)),
            ("Chromium (onnxruntime-web, wasm)", browser_us(args.bundle, texts, mode, args.repeat, tokens))]
    print(f"{args.bundle}, mode {mode}: {len(texts)} inputs, {tokens} decoder steps, batch 1, 1 thread\n")
    print("| engine | us/token | x Python |\n|---|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.1f} | {us / py:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
