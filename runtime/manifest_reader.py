"""Reading manifest.json: the schema (manifest.schema.json), then the rules between fields, then the specs.

Each rule is checked here once. The Node.js runtime (bindings/node/lib/manifest.js) checks the same rules in
the same order, so both refuse a manifest with the same ``code`` and ``field``:

====================  =========================================================================
code                  rule
====================  =========================================================================
index, unk_id         a vocabulary's special ids index its tokens; on_unknown 'unk' needs unk_id
features              a feature side's mean and std hold one value per feature
padding               a token source says how padding is handled; source_length iff 'lengths'
duplicate             state names, state outputs and constant names are unique
mask                  an attention decoder has exactly one constant of kind 'mask'
mode_graph            every mode names graphs that exist; only mode 'step' runs decoder_step
default_mode          decode.default_mode is one of the modes
strategies            decode.strategies are those the graphs allow
end_token             a token target has an end token
first_input           decode.first_input suits the sides; a source_step rule's indices are within the
                      source and one per target feature
====================  =========================================================================
"""

from __future__ import annotations

from typing import Any

from .errors import BundleError
from .manifest import (
    STEP_MODE,
    AutoencoderManifest,
    ConstantSpec,
    FeatureSpec,
    GraphSpec,
    IONames,
    Manifest,
    StateSpec,
    TensorSpec,
    TokenSpec,
    check_features,
    strategies_for,
)
from .schema import show, validate
from .vocab import Vocabulary, check_vocabulary

__all__ = ["parse_manifest", "check_rules"]

WHERE = "manifest.json"


def parse_manifest(data: Any) -> Manifest | AutoencoderManifest:
    """Parse manifest.json content of either family; every problem is a BundleError with a code and a field."""
    validate(data)
    check_rules(data)
    return _autoencoder(data) if data["family"] == "autoencoder" else _seq2seq(data)


def check_rules(data: dict[str, Any]) -> None:
    """The rules between fields, in order, on a manifest the schema accepted."""
    if data["family"] == "autoencoder":
        _side_rules(data["source"], "source")
        return
    for side in ("source", "target"):
        _side_rules(data[side], side)
    _padding_rule(data)
    _name_rules(data)
    _mask_rule(data)
    _mode_rules(data)
    _decode_rules(data)


def _fail(code: str, field: str, text: str) -> BundleError:
    return BundleError(f"{WHERE}: {field} {text}", code=code, field=field)


def _side_rules(side: dict[str, Any], name: str) -> None:
    if side["kind"] == "tokens":
        check_vocabulary(side["vocabulary"], WHERE, f"{name}.vocabulary")
    else:
        check_features(side, WHERE, name)


def _padding_rule(data: dict[str, Any]) -> None:
    io = data["io"]
    padding, length = io.get("padding"), io.get("source_length")
    if data["source"]["kind"] == "tokens" and padding is None:
        raise _fail("padding", "io.padding", "is null; a token source needs it to say how its padding is handled: "
                                             "'lengths', 'mask' or 'none'")
    if (padding == "lengths") != (length is not None):
        raise _fail("padding", "io.source_length", f"is {show(length)} with io.padding {show(padding)}; it names "
                                                   "the lengths input exactly when io.padding is 'lengths'")


def _name_rules(data: dict[str, Any]) -> None:
    """State names, state outputs and constant names are unique (a constant may not share a state's name)."""
    state, constants = data["state"], data.get("constants") or []
    for key, entries, taken in (("name", state, set()), ("output", state, set()),
                                ("name", constants, {s["name"] for s in state})):
        part = "state" if entries is state else "constants"
        for i, entry in enumerate(entries):
            if entry[key] in taken:
                raise _fail("duplicate", f"{part}[{i}].{key}", f"{show(entry[key])} is taken; state names, state "
                                                              "outputs and constant names must be unique")
            taken.add(entry[key])


def _mask_rule(data: dict[str, Any]) -> None:
    constants = data.get("constants") or []
    masks = sum(c["kind"] == "mask" for c in constants)
    if (data["io"].get("attention") is not None or constants) and masks != 1:
        raise _fail("mask", "constants", f"hold {masks} constants of kind 'mask'; an attention decoder needs "
                                         "exactly one")


def _mode_rules(data: dict[str, Any]) -> None:
    graphs, modes = data["graphs"], data["decode"]["modes"]
    for mode in sorted(modes):
        for role in ("encoder", "decoder"):
            graph, field = modes[mode][role], f"decode.modes.{mode}.{role}"
            if graph not in graphs:
                raise _fail("mode_graph", field, f"names graph {show(graph)}, which is not in graphs "
                                                 f"{show(sorted(graphs))}")
            if role == "decoder" and mode != STEP_MODE and graph == "decoder_step":
                raise _fail("mode_graph", field, "names 'decoder_step': only decode mode 'step' may run graph "
                                                 "'decoder_step'")
    default = data["decode"]["default_mode"]
    if default not in modes:
        raise _fail("default_mode", "decode.default_mode", f"must be one of {list(modes)}, got {show(default)}")


def _decode_rules(data: dict[str, Any]) -> None:
    decode, source, target = data["decode"], data["source"], data["target"]
    allowed = strategies_for(decode["modes"])
    given = decode.get("strategies")
    if given is not None and tuple(given) != allowed:
        step = "with" if STEP_MODE in decode["modes"] else "without"
        raise _fail("strategies", "decode.strategies", f"{show(given)} do not match the graphs: {step} the step graph "
                                                       f"the bundle runs {list(allowed)}")
    if target["kind"] == "tokens" and target["vocabulary"].get("end_id") is None:
        raise _fail("end_token", "target.vocabulary.end_id", "is null; a token target needs an end token")
    first = decode["first_input"]
    if first == "start_token" and (target["kind"] != "tokens" or target["vocabulary"].get("start_id") is None):
        raise _fail("first_input", "decode.first_input", "is 'start_token', which needs a token target with a "
                                                         "start_id")
    if first == "last_source_step" and not (source["kind"] == target["kind"] == "features"
                                            and source["features"] == target["features"]):
        raise _fail("first_input", "decode.first_input", "is 'last_source_step', which needs feature source and "
                                                         "target of the same width")
    if isinstance(first, dict):
        _first_input_rule(first, source, target)


def _first_input_rule(rule: dict[str, Any], source: dict[str, Any], target: dict[str, Any]) -> None:
    """A {"rule": "source_step"} first input: feature sides, indices within the source, one per target feature."""
    if not source["kind"] == target["kind"] == "features":
        raise _fail("first_input", "decode.first_input", "is a source_step rule, which needs feature source and "
                                                         "target")
    features = rule["features"]
    for i, index in enumerate(features):
        if index >= source["features"]:
            raise _fail("first_input", f"decode.first_input.features[{i}]",
                        f"is {show(index)}, but the source has {source['features']} features (indices 0 to "
                        f"{source['features'] - 1})")
    if len(features) != target["features"]:
        raise _fail("first_input", "decode.first_input.features",
                    f"holds {len(features)} indices but the target has {target['features']} features: one source "
                    "index per target feature")


# -- building the specs from a checked manifest ---------------------------------------------------------------

def _int(value: Any) -> Any:
    """A JSON integer as int (32.0 is the integer 32); None stays None."""
    return None if value is None else int(value)


def _tensor(data: dict[str, Any]) -> TensorSpec:
    return TensorSpec(data["name"], data["dtype"], tuple(d if isinstance(d, str) else int(d) for d in data["shape"]))


def _graph(data: dict[str, Any]) -> GraphSpec:
    return GraphSpec(data["file"], data["sha256"], tuple(_tensor(t) for t in data["inputs"]),
                     tuple(_tensor(t) for t in data["outputs"]))


def _side(data: dict[str, Any]) -> TokenSpec | FeatureSpec:
    if data["kind"] == "tokens":
        return TokenSpec(Vocabulary.from_dict(data["vocabulary"]))
    return FeatureSpec(int(data["features"]), tuple(data["mean"]), tuple(data["std"]))


def _common(data: dict[str, Any]) -> dict[str, Any]:
    """The fields both families share: the model, the graphs, and what the manifest records of its origin."""
    model = data["model"]
    return {"cell": model["cell"], "encoder_units": tuple(int(u) for u in model["encoder_units"]),
            "decoder_units": tuple(int(u) for u in model["decoder_units"]),
            "graphs": {key: _graph(g) for key, g in data["graphs"].items()},
            "task": data.get("task"), "parity": data.get("parity") or {}, "versions": data.get("versions") or {},
            "data": data.get("data")}


def _first_input(first: Any) -> str | dict[str, Any]:
    """A first-input name as is; a rule with its indices as ints (2.0 is the integer 2)."""
    if isinstance(first, str):
        return first
    return {"rule": first["rule"], "step": int(first["step"]), "features": [int(i) for i in first["features"]]}


def _seq2seq(data: dict[str, Any]) -> Manifest:
    io, decode = data["io"], data["decode"]
    state = tuple(StateSpec(s["name"], int(s["layer"]), s["kind"], int(s["size"]), s["output"], s["init"],
                            s.get("encoder_output")) for s in data["state"])
    constants = tuple(ConstantSpec(c["name"], c["kind"], c["encoder_output"], _int(c.get("size")),
                                   c.get("decoder_input", True)) for c in data.get("constants") or ())
    names = IONames(source=io["source"], source_length=io.get("source_length"), step_input=io["step_input"],
                    step_output=io["step_output"], padding=io.get("padding"), attention=io.get("attention"))
    modes = {mode: {"encoder": g["encoder"], "decoder": g["decoder"]} for mode, g in decode["modes"].items()}
    strategies = decode.get("strategies")
    return Manifest(family="seq2seq", state=state, source=_side(data["source"]), target=_side(data["target"]),
                    io=names, max_steps=int(decode["max_steps"]), first_input=_first_input(decode["first_input"]), modes=modes,
                    default_mode=decode["default_mode"], constants=constants,
                    strategies=None if strategies is None else tuple(strategies), int8=decode.get("int8"),
                    **_common(data))


def _autoencoder(data: dict[str, Any]) -> AutoencoderManifest:
    io = data["io"]
    return AutoencoderManifest(source=_side(data["source"]), window=int(data["window"]), source_name=io["source"],
                               reconstruction_name=io["reconstruction"], latent_name=io["latent"],
                               anomaly=data.get("anomaly"), **_common(data))
