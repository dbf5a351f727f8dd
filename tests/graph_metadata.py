"""What every exported graph must say about itself in its metadata_props (issue 16, item 3)."""

from __future__ import annotations

import json


def graph_metadata(path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def check_graph_metadata(bundle) -> None:
    """Every graph of ``bundle`` says what it is in its own metadata_props, as its manifest does."""
    from seq2seq_edge.export.writing import contract_sha256

    data = json.loads((bundle / "manifest.json").read_text())
    for role, graph in data["graphs"].items():
        props = graph_metadata(bundle / graph["file"])
        assert props["seq2seq_edge.format"] == "seq2seq-edge/1" and props["seq2seq_edge.role"] == role
        assert props["seq2seq_edge.family"] == data["family"]
        assert props["seq2seq_edge.inputs"] == ",".join(t["name"] for t in graph["inputs"])
        assert props["seq2seq_edge.outputs"] == ",".join(t["name"] for t in graph["outputs"])
        assert props["seq2seq_edge.contract_sha256"] == contract_sha256(data)
        if data["family"] == "seq2seq":
            assert json.loads(props["seq2seq_edge.state"]) == [
                {"name": s["name"], "kind": s["kind"], "size": s["size"], "layer": s["layer"]} for s in data["state"]]

