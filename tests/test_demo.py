"""`seq2seq-edge demo`: the bundle decoded in a real headless Chromium with onnxruntime-web (issue 16, item 2).

Needs Debian's chromium and chromium-driver, selenium, and `npm ci` in bindings/web (`.ci/run` does all
three); a missing piece fails the test with what to install, never skips it.
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from seq2seq_edge.cli import main
from seq2seq_edge.serve.demo import LIB, WEB, demo_routes
from seq2seq_edge.runtime import load

DATA = Path(__file__).parent / "data"
SCREENSHOTS = Path(__file__).parent.parent / "docs"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the demo test needs Debian's chromium and chromium-driver: apt-get install chromium " \
                                "chromium-driver (.ci/run installs them)"
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
        options.add_argument(arg)
    options.binary_location = chromium
    browser = webdriver.Chrome(service=Service(driver), options=options)
    yield browser
    browser.quit()


def _serve(bundle: Path) -> str:
    """Start the demo server for ``bundle`` on a free port in a daemon thread; its URL."""
    from seq2seq_edge.serve.demo import serve_demo

    found: list[str] = []
    started = threading.Event()

    def ready(url: str) -> None:
        found.append(url)
        started.set()

    threading.Thread(target=serve_demo, args=(bundle, 0), kwargs={"ready": ready}, daemon=True).start()
    assert started.wait(30), "the demo server did not start"
    return found[0]


def _open(browser, url: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    status = browser.find_element(By.ID, "status").text
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true", status
    return browser


def _type(browser, text: str) -> tuple[str, str]:
    """Type ``text`` into the page as a person would; (output, error) once the page shows a result."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = browser.find_element(By.ID, "source")
    box.clear()
    box.send_keys(text)  # the page decodes at every keystroke and says which text its result is for
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "output").get_attribute("data-for") == text)
    return browser.find_element(By.ID, "output").text, browser.find_element(By.ID, "error").text


def _generate(browser, texts: list[str], mode: str):
    """The page's model.generateText(texts, {mode}): its outputs, or the error's message."""
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.seq2seqEdge.model.generateText(arguments[0], {mode: arguments[1]})"
        ".then(done, e => done(e.message))",
        texts, mode)


def test_the_page_decodes_what_a_person_types(browser, tmp_path):
    bundle = DATA / "dates_tiny"
    page = _open(browser, _serve(bundle))
    want = load(bundle).generate_text(["vendredi 14 juillet 2023", "3 mei 1961"])
    assert _type(page, "vendredi 14 juillet 2023") == (want[0], "")
    assert _type(page, "3 mei 1961") == (want[1], "")
    # every decode mode in the browser gives the Python runtime's outputs
    texts = ["1 May 2000", "Sunday, 31 December 2049", "5 de fevereiro de 2036"]
    for mode in ("step", "fused", "fused-int8"):
        assert _generate(page, texts, mode) == load(bundle, threads=1).generate_text(texts, mode=mode), mode
    shot = tmp_path / "demo.png"
    page.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_fused_loops_export_writes_today_run_in_the_browser(browser, tmp_path):
    """The committed bundles hold loops from earlier exports: this one is exported now (a seeded, untrained
    character model, as the benchmark builds), so onnxruntime-web runs every op the loop builder writes today,
    the end test included: the end token's bias is raised until some rows end early and others run to the end."""
    import keras

    from seq2seq_edge.bench.models import BenchModel, make_char_run, sample_sources
    from seq2seq_edge.export import export_run
    from seq2seq_edge.training import RunDir
    from seq2seq_edge.training.rundir import MODEL_FILE

    steps = 12
    run = make_char_run(BenchModel("browser-lstm", "lstm", 1, units=32), tmp_path / "run", max_steps=steps)
    source, target = RunDir(run).vocabularies()
    texts = sample_sources(source, 8, seed=3)
    net = keras.saving.load_model(run / MODEL_FILE)
    kernel, bias = net.get_layer("output").get_weights()
    for raise_by in (0.05, 0.03, 0.07, 0.02, 0.1):  # the untrained model's end logit sits near the top
        bias_now = bias.copy()
        bias_now[target.end_id] += raise_by
        net.get_layer("output").set_weights([kernel, bias_now])
        net.save(run / MODEL_FILE)
        bundle = export_run(run, tmp_path / "bundle", parity_inputs=texts, parity_samples=8, force=True).path
        lengths = [len(t) for t in load(bundle, threads=1).generate_text(texts, mode="fused")]
        if min(lengths) < steps and max(lengths) == steps:
            break
    else:
        pytest.fail(f"no end-token bias gave rows that end early beside rows that do not: {lengths}")
    page = _open(browser, _serve(bundle))
    for mode in ("fused", "fused-int8"):
        assert _generate(page, texts, mode) == load(bundle, threads=1).generate_text(texts, mode=mode), mode


def test_an_unknown_symbol_is_shown_with_the_runtime_s_message(browser):
    from seq2seq_edge.runtime import InputError

    bundle = DATA / "dates_tiny"
    page = _open(browser, _serve(bundle))
    with pytest.raises(InputError) as python:
        load(bundle).generate_text(["3 mei 1961 ☃"])
    output, error = _type(page, "3 mei 1961 ☃")
    same = "at position 11 of {0}3 mei 1961 ☃{0} is not in the model's vocabulary; known symbols: "
    assert output == "" and error.startswith('"☃" ' + same.format('"'))  # the Node runtime's words (JSON quotes)
    assert str(python.value).startswith("'☃' " + same.format("'"))


def test_attention_bundles_show_the_alignment(browser):
    from selenium.webdriver.common.by import By

    bundle = DATA / "dates_attention_tiny"
    page = _open(browser, _serve(bundle))
    output, _ = _type(page, "3 mei 1961")
    assert output == load(bundle).generate_text(["3 mei 1961"])[0]
    rows = page.find_elements(By.CSS_SELECTOR, "#alignment tr")
    header = [c.text for c in rows[0].find_elements(By.TAG_NAME, "th")]
    assert "".join(header).replace("␣", " ") == "3 mei 1961"
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows[1:]] == list(output) + ["</s>"]
    if os.environ.get("SEQ2SEQ_EDGE_REFRESH_DEMO_PNG"):  # the README's picture, refreshed when asked
        page.save_screenshot(str(SCREENSHOTS / "demo.png"))


def test_a_bundle_that_fails_verification_is_not_served(tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(DATA / "dates_tiny", bundle)
    with open(bundle / "decoder_step.onnx", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01")
    assert main(["demo", str(bundle), "--port", "0"]) == 1
    assert "decoder_step.onnx: sha256" in capsys.readouterr().err


def test_only_the_page_its_code_and_the_bundle_are_served():
    routes = demo_routes(DATA / "dates_tiny")
    assert set(routes) == ({"/", "/app/demo.js", "/bundle/manifest.json", "/lib/manifest.schema.json"}
                           | {f"/lib/{p.name}" for p in LIB.glob("*.js")}
                           | {f"/ort/{n}" for n in ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs",
                                                     "ort-wasm-simd-threaded.wasm")}
                           | {f"/bundle/{f}" for f in ("encoder.onnx", "decoder_step.onnx", "decode_loop.onnx",
                                                       "decode_loop_int8.onnx", "encoder_int8.onnx")})
    # the page loads every module of the Node binding's lib/ that exists, and only those
    listed = (WEB / "demo.js").read_text().split("const LIB_MODULES = [", 1)[1].split("]", 1)[0]
    assert sorted(n.strip(" '") for n in listed.split(",")) == sorted(p.stem for p in LIB.glob("*.js"))


def test_demo_refusals(tmp_path, capsys):
    import socket

    assert main(["demo", str(DATA / "dates_tiny"), "--port", "70000"]) == 1
    assert "error: --port must be from 0 to 65535, got 70000" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", str(DATA / "dates_tiny"), "--port", str(port)]) == 1
    assert f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pass another --port" \
        in capsys.readouterr().err
    assert main(["demo", str(DATA / "sine_tiny"), "--port", "0"]) == 1
    assert "the demo page decodes text; this bundle is not a token seq2seq bundle" in capsys.readouterr().err
    assert main(["demo", str(DATA / "dates_tiny"), "--ort", str(tmp_path)]) == 1
    assert f"{tmp_path} does not hold onnxruntime-web's browser files" in capsys.readouterr().err


def _status(url: str, host: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_server_hands_out_nothing_else():
    url = _serve(DATA / "dates_tiny")
    port = url.rsplit(":", 1)[1].strip("/")
    assert _status(url + "bundle/manifest.json") == 200 and _status(url + "lib/model.js") == 200
    assert _status(url + "lib/manifest.schema.json") == 200  # the runtime's own schema file, for lib/schema.js
    for path in ("bundle/", "lib/", "bundle/../pyproject.toml", "bundle/%2e%2e/pyproject.toml", "pyproject.toml",
                 "bundle/golden.json", "app/../serve/demo.py", "ort/package.json"):
        assert _status(url + path) == 404, path
    # a page on another name that resolves to 127.0.0.1 (DNS rebinding) is not answered
    assert _status(url + "bundle/manifest.json", host=f"attacker.example:{port}") == 403
    assert _status(url + "bundle/manifest.json", host=f"localhost:{port}") == 200
