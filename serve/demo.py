"""`seq2seq-edge demo BUNDLE`: serve a web page that decodes with the bundle in the browser (onnxruntime-web).

Nothing runs on the server but a static file server on 127.0.0.1: the page (bindings/web/), the Node
binding's decoding code that the page loads as it is (bindings/node/lib/, the same code `npm test`
checks against the Python runtime), onnxruntime-web's browser files, and the bundle's manifest and
graphs. Only those files are served; every other path is a 404.
"""

from __future__ import annotations

import mimetypes
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from ..runtime.errors import Seq2SeqEdgeError
from ..runtime.schema import SCHEMA_FILE

__all__ = ["demo_routes", "find_onnxruntime_web", "serve_demo", "ORT_WEB_VERSION"]

ROOT = Path(__file__).resolve().parent.parent  # the package root: the repository root in a checkout
WEB, LIB = ROOT / "bindings" / "web", ROOT / "bindings" / "node" / "lib"
ORT_WEB_VERSION = "1.30.0"  # bindings/web/package.json pins the same
# onnxruntime-web's single-threaded WebAssembly build: the script, its loader and the wasm binary.
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def find_onnxruntime_web(ort: str | Path | None = None) -> Path:
    """The folder holding onnxruntime-web's browser files: ``ort``, else the checkout's bindings/web install."""
    candidates = [Path(ort)] if ort else [WEB / "node_modules" / "onnxruntime-web" / "dist"]
    for folder in candidates:
        if all((folder / f).is_file() for f in ORT_FILES):
            return folder
    where = f"{ort} does not hold" if ort else "no onnxruntime-web install found with"
    raise Seq2SeqEdgeError(
        f"{where} onnxruntime-web's browser files ({', '.join(ORT_FILES)}); run `npm ci` in bindings/web of a "
        f"checkout, or `npm install onnxruntime-web@{ORT_WEB_VERSION}` anywhere and pass --ort "
        "node_modules/onnxruntime-web/dist")


def demo_routes(bundle: str | Path, ort: str | Path | None = None) -> dict[str, Path]:
    """URL path -> file, for every file the page needs. The bundle must load (and verify) in Python first."""
    from ..runtime import load
    from ..runtime.manifest import TokenSpec

    model = load(bundle)
    manifest = model.manifest
    if manifest.family != "seq2seq" or not isinstance(manifest.source, TokenSpec):
        raise Seq2SeqEdgeError(f"{bundle}: the demo page decodes text; this bundle is not a token seq2seq bundle")
    if not WEB.is_dir() or not LIB.is_dir():
        raise Seq2SeqEdgeError(f"the demo's page is missing from this install ({WEB}); reinstall seq2seq-edge")
    folder = Path(bundle)
    routes = {"/": WEB / "index.html"}
    routes.update({f"/app/{p.name}": p for p in WEB.glob("*.js")})
    routes.update({f"/lib/{p.name}": p for p in LIB.glob("*.js")})
    routes["/lib/manifest.schema.json"] = SCHEMA_FILE  # lib/schema.js reads it; one file for both runtimes
    ort_dir = find_onnxruntime_web(ort)
    routes.update({f"/ort/{name}": ort_dir / name for name in ORT_FILES})
    routes["/bundle/manifest.json"] = folder / "manifest.json"
    routes.update({f"/bundle/{g.file}": folder / g.file for g in manifest.graphs.values()})
    return routes


class _Handler(SimpleHTTPRequestHandler):
    """Serves exactly the routes given (GET and HEAD), with the headers that let the page use WebAssembly."""

    routes: dict[str, Path] = {}

    def translate_path(self, path: str) -> str:
        route = unquote(path.split("?", 1)[0].split("#", 1)[0])
        target = self.routes.get(route)
        return str(target) if target is not None else "/nonexistent/seq2seq-edge-demo/not-served"

    def send_head(self):
        # Only pages addressed to this server by its own name: another site's page cannot read the bundle
        # through a DNS name that it points at 127.0.0.1 (DNS rebinding).
        host, port = self.headers.get("Host", ""), self.server.server_address[1]
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            self.send_error(403, "the demo answers requests for 127.0.0.1 or localhost only")
            return None
        return super().send_head()

    def list_directory(self, path):  # never list a folder
        self.send_error(404)
        return None

    def guess_type(self, path) -> str:
        suffix = Path(str(path)).suffix
        return {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
                ".onnx": "application/octet-stream"}.get(suffix) or mimetypes.guess_type(str(path))[0] or \
            "application/octet-stream"

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # quiet: one line per request is noise here
        pass


def serve_demo(bundle: str | Path, port: int = 8000, ort: str | Path | None = None, *, ready=None) -> None:
    """Serve the demo on 127.0.0.1:``port`` (0: any free port) until interrupted; ``ready(url)`` is called once
    it listens (default: print the address)."""
    routes = demo_routes(bundle, ort)
    handler = type("DemoHandler", (_Handler,), {"routes": routes})
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise Seq2SeqEdgeError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pass another --port") from None
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    (ready or (lambda u: print(f"serving {bundle} at {u} (Ctrl-C to stop)", flush=True)))(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
