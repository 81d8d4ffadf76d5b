"""Validate a model spec (JSON from a checkpoint) before anything is built from it.

A checkpoint may come from anywhere. Every number that sizes an allocation
(channels, units, kernel sides, input sides) is checked against a named limit
here, so a hostile file fails with one line instead of asking for gigabytes,
and every field has the JSON type the layer expects, so no TypeError or
AttributeError escapes later.
"""

from __future__ import annotations

import math

from edgecnn.errors import ModelError

MAX_NODES = 4096
MAX_CHANNELS = 1 << 16       # filters, units, groups
MAX_WINDOW = 255             # kernel, pool window, stride, dilation sides
MAX_PAD = 4096               # explicit padding per side
MAX_INPUT_SIDE = 1 << 16     # any input dimension
MAX_INPUT_SIZE = 1 << 24     # values per input image
MAX_LABELS = 100_000
MAX_NAME = 256
MAX_PARAMS = 32_000_000      # 128 MB of float32: far above any model edgecnn deploys

_INT_FIELDS = {"filters": MAX_CHANNELS, "units": MAX_CHANNELS, "groups": MAX_CHANNELS}
_PAIR_FIELDS = {"kernel": MAX_WINDOW, "stride": MAX_WINDOW, "dilation": MAX_WINDOW, "size": MAX_WINDOW}
_FLOAT_FIELDS = ("alpha", "momentum", "eps")


def _int(value, what: str, lo: int, hi: int) -> int:
    """An int in [lo, hi]; JSON floats with integral values (3e6) count as ints, so the limit is named."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"{what} must be an integer, got {value!r:.40}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ModelError(f"{what} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ModelError(f"{what}={value:g} is outside the limit {lo}..{hi}")
    return int(value)


def _int_list(value, what: str, lo: int, hi: int, lengths) -> list[int]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 in lengths:
        return [_int(value, what, lo, hi)]
    if not isinstance(value, list) or len(value) not in lengths:
        raise ModelError(f"{what} must be an integer or a list of {'/'.join(map(str, lengths))}, got {value!r:.60}")
    return [_int(v, what, lo, hi) for v in value]


def _str(value, what: str, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ModelError(f"{what} must be a non-empty string of at most {limit} characters")
    return value


def check_layer_config(cfg, where: str) -> None:
    """Types and limits of one layer's config (kind, name, activation and the sizing fields)."""
    from edgecnn.model.layers import ACTIVATIONS, LAYER_KINDS, _register_graph_layers

    _register_graph_layers()
    if not isinstance(cfg, dict):
        raise ModelError(f"{where} must be a JSON object")
    kind = cfg.get("kind")
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise ModelError(f"{where}: unknown layer kind {kind!r:.40}")
    if cfg.get("name") is not None:
        _str(cfg["name"], f"{where}: name")
    where = f"layer {cfg.get('name')!r:.60}" if isinstance(cfg.get("name"), str) else where
    if "activation" in cfg and cfg["activation"] not in ACTIVATIONS:
        raise ModelError(f"{where}: unknown activation {cfg['activation']!r:.40}")
    for key, hi in _INT_FIELDS.items():
        if key in cfg:
            _int(cfg[key], f"{where}: {key}", 1, hi)
    for key, hi in _PAIR_FIELDS.items():
        if key in cfg:
            _int_list(cfg[key], f"{where}: {key}", 1, hi, (1, 2))
    if "padding" in cfg and not (isinstance(cfg["padding"], str) and cfg["padding"].lower() in ("valid", "same")):
        _int_list(cfg["padding"], f"{where}: padding", 0, MAX_PAD, (1, 2, 4))
    for key in _FLOAT_FIELDS:
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float))
                           or not math.isfinite(cfg[key])):
            raise ModelError(f"{where}: {key} must be a finite number, got {cfg[key]!r:.40}")
    if "use_bias" in cfg and not isinstance(cfg["use_bias"], bool):
        raise ModelError(f"{where}: use_bias must be true or false")
    if cfg.get("connection_table") is not None:
        table = cfg["connection_table"]
        if not isinstance(table, list) or len(table) > MAX_CHANNELS:
            raise ModelError(f"{where}: connection_table must be a list of at most {MAX_CHANNELS} rows")
        for row in table:
            _int_list(row, f"{where}: connection_table entry", 0, MAX_CHANNELS - 1, range(1, MAX_CHANNELS + 1))


def check_spec(spec) -> None:
    """Raise ModelError (one line, naming the field and the limit) unless `spec` is a sane model spec."""
    if not isinstance(spec, dict):
        raise ModelError("the model spec must be a JSON object")
    if spec.get("arch") is not None:
        _str(spec["arch"], "arch")
    shape = _int_list(spec.get("input_shape"), "input_shape", 1, MAX_INPUT_SIDE, (1, 2, 3))
    if math.prod(shape) > MAX_INPUT_SIZE:
        raise ModelError(f"input_shape {shape} holds more than the limit of {MAX_INPUT_SIZE} values")
    labels = spec.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or len(labels) > MAX_LABELS:
            raise ModelError(f"labels must be a list of at most {MAX_LABELS} strings")
        for label in labels:
            if not isinstance(label, str) or len(label) > MAX_NAME:
                raise ModelError(f"each label must be a string of at most {MAX_NAME} characters")
    key = "nodes" if "nodes" in spec else "layers"
    configs = spec.get(key)
    if not isinstance(configs, list) or not 1 <= len(configs) <= MAX_NODES:
        raise ModelError(f"the spec needs a '{key}' list of 1..{MAX_NODES} layers")
    for i, cfg in enumerate(configs):
        check_layer_config(cfg, f"{key}[{i}]")
        if key == "nodes":
            inputs = cfg.get("inputs")
            if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_NODES or \
                    not all(isinstance(s, str) and len(s) <= MAX_NAME for s in inputs):
                raise ModelError(f"nodes[{i}]: 'inputs' must be a list of node names")
            _str(cfg.get("name"), f"nodes[{i}]: name")
    if key == "nodes" and spec.get("output") is not None:
        _str(spec["output"], "output")


def check_model_size(model) -> None:
    """After the structure is built (no arrays yet): refuse models over MAX_PARAMS."""
    total = model.total_params
    if total > MAX_PARAMS:
        raise ModelError(f"the model has {total:,} parameters, over the limit of {MAX_PARAMS:,}")
