"""The .tflite flatbuffer verifier (deploy/tflite/verify.py).

Three things are shown here:
  - its schema layout is right: every accessor flatc generated for the `tflite`
    package and for LiteRT's own schema module reads the slot, kind and size
    schema_layout.py says;
  - every file edgecnn writes, every op's example and the converter's models
    verify, fast;
  - corrupt files are refused with TFLiteFormatError, never another exception,
    a hang or a large allocation, and LiteRT is the judge: every mutant LiteRT's
    own verifier refuses is refused here, and every refusal here that LiteRT's
    verifier lets through is one of verify.py's three documented stricter checks.
"""

from __future__ import annotations

import importlib
import inspect
import re
import struct
import time
import tracemalloc

import flatbuffers
import numpy as np
import pytest
import tflite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_conformance import model_dir  # noqa: F401 - the converter's models, made once per session
from tflite_models import GraphBuilder, converter_style, lenet5
from tflite_verify_agreement import MUTATIONS, is_stricter_check, litert_verdicts, mutate, structural_ranges

from edgecnn.deploy.tflite import read_tflite, schema_layout, to_bytes, verify
from edgecnn.deploy.tflite.verify import verify_model
from edgecnn.errors import EdgecnnError, TFLiteFormatError

LENET = to_bytes(lenet5(0))
SMALL = to_bytes(GraphBuilder(np.random.default_rng(0), (1, 6, 6, 1)).conv2d(2, act="RELU").flatten()
                 .fully_connected(3).softmax().build(metadata={"labels": ["a", "b", "c"]}))  # fmt: skip


def refused(data: bytes, match: str | None = None) -> str:
    with pytest.raises(TFLiteFormatError, match=match) as e:
        verify_model(data, "m.tflite")
    message = str(e.value)
    assert message.startswith("m.tflite: corrupt .tflite: ") and " at byte " in message, message
    return message


def patched(data: bytes, pos: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, pos, value)
    return bytes(b)


def field_pos(table, voffset: int) -> int:
    """Absolute position of a field of a `tflite` accessor object's table."""
    return table._tab.Pos + table._tab.Offset(voffset)


# ---------------------------------------------------------------- the layout matches flatc's own accessors

_FLAG_SIZES = {"Bool": 1, "Int8": 1, "Uint8": 1, "Int16": 2, "Uint16": 2, "Int32": 4, "Uint32": 4, "Float32": 4,
               "Int64": 8, "Uint64": 8, "Float64": 8}  # fmt: skip


def generated_accessors(cls) -> dict[int, tuple]:
    """{vtable offset: (kind, argument)} read off a flatc-generated Python table class."""
    out = {}
    methods = vars(cls)
    for name, fn in methods.items():
        helper = any(name.endswith(s) and name[: -len(s)] in methods for s in ("Length", "IsNone", "AsNumpy"))
        if not callable(fn) or helper or name in ("Init", "GetRootAs"):
            continue
        src = inspect.getsource(fn)
        slot = re.search(r"self\._tab\.Offset\((\d+)\)", src)
        if not slot:
            continue
        voffset = int(slot.group(1))
        made = re.search(r"obj = (\w+)\(\)", src)  # the table class an offset is read as
        if "self._tab.Union(" in src:
            kind = ("union",)
        elif "self._tab.Vector(o)" in src:
            if "Indirect" in src:
                kind = ("vector_table", made.group(1))
            elif "self._tab.String(" in src:
                kind = ("vector_string",)
            else:
                kind = ("vector", int(re.search(r"j \* (\d+)", src).group(1)))
        elif "self._tab.Indirect(o + self._tab.Pos)" in src:
            kind = ("table", made.group(1))
        elif "self._tab.String(o + self._tab.Pos)" in src:
            kind = ("string",)
        else:
            kind = ("scalar", _FLAG_SIZES[re.search(r"number_types\.(\w+)Flags, o \+", src).group(1)])
        out[voffset] = kind
    return out


def ours(table: str) -> dict[int, tuple]:
    out = {}
    for _, voffset, kind, arg in schema_layout.TABLES[table]:
        out[voffset] = (kind,) if kind in ("union", "string", "vector_string") else (kind, arg)
    return out


def generated_classes():
    """(where, table name, class) for every table class flatc generated for `tflite` and `ai_edge_litert`."""
    litert = importlib.import_module("ai_edge_litert.schema_py_generated")
    for name in schema_layout.TABLES:
        try:
            module = importlib.import_module(f"tflite.{name}")
            yield "tflite", name, getattr(module, name)
        except ModuleNotFoundError:
            pass  # newer than the tflite package
        if hasattr(litert, name):
            yield "ai_edge_litert", name, getattr(litert, name)


def test_layout_agrees_with_every_generated_accessor():
    checked, seen = 0, set()
    for where, name, cls in generated_classes():
        theirs = generated_accessors(cls)
        mine = ours(name)
        for voffset, kind in theirs.items():
            assert mine.get(voffset) == kind, f"{where} {name} slot {voffset}: {kind}, layout says {mine.get(voffset)}"
            checked += 1
        if where == "ai_edge_litert":  # the LiteRT edgecnn runs against: not one field more or less
            assert set(mine) == set(theirs), f"{name}: layout slots {sorted(mine)}, LiteRT's {sorted(theirs)}"
        seen.add(where)
    assert seen == {"tflite", "ai_edge_litert"}
    assert checked > 500  # both modules, every table: flatc's accessors, slot for slot


def test_layout_knows_the_unions():
    """Each union's type values name the tables LiteRT's generated code names."""
    litert = importlib.import_module("ai_edge_litert.schema_py_generated")
    assert schema_layout.UNIONS["BuiltinOptions"][tflite.BuiltinOptions.FullyConnectedOptions] == "FullyConnectedOptions"
    for union, members in schema_layout.UNIONS.items():
        theirs = {v: k for k, v in vars(getattr(litert, union)).items() if not k.startswith("_") and k != "NONE"}
        assert members == theirs, union
        for value, table in members.items():
            assert table in schema_layout.TABLES, (union, table)
            assert getattr(getattr(tflite, union), table, value) == value  # the older tflite package, where it has it


# ---------------------------------------------------------------- good files verify, fast


def test_edgecnn_files_verify():
    verify_model(LENET, "lenet5")
    verify_model(SMALL, "small")
    for flatten in ("pack", "concat", "const"):
        verify_model(converter_style(lenet5(1), flatten), f"converter-style {flatten}")


def test_every_op_example_verifies():
    registry = importlib.import_module("test_op_registry")
    for name in registry.RUNNABLE:
        verify_model(to_bytes(registry.example_graph(name, np.random.default_rng(0))), name)


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def test_lenet5_verifies_in_a_few_milliseconds():
    assert len(LENET) > 60_000
    assert best_of(lambda: verify_model(LENET)) < 0.02


@pytest.mark.slow  # the converter's models take ~35 s of TensorFlow the first time
def test_converter_models_verify(model_dir):  # noqa: F811
    files = sorted(model_dir.glob("*.tflite"))
    assert len(files) >= 10
    for path in files:
        data = path.read_bytes()
        verify_model(data, path.name)
        assert best_of(lambda: verify_model(data), 3) < 0.1, path.name


# ---------------------------------------------------------------- hand-made corruption: one clear message each


def test_short_foreign_and_root():
    refused(b"", "0 bytes is too short")
    refused(LENET[:11], "too short")
    refused(LENET[:4] + b"TFL2" + LENET[8:], "file identifier")
    refused(patched(LENET, 0, "<I", 0), "root table offset 0")
    refused(patched(LENET, 0, "<I", len(LENET)), "root table offset")
    refused(patched(LENET, 0, "<I", 0x80000000), "root table offset")
    refused(patched(LENET, 0, "<I", 13), "Model table misaligned")


def root_and_vtable(data: bytes) -> tuple[int, int]:
    (root,) = struct.unpack_from("<I", data, 0)
    return root, root - struct.unpack_from("<i", data, root)[0]


def test_vtables():
    root, vt = root_and_vtable(LENET)
    soffset = root - vt
    small_vt = root_and_vtable(SMALL)[1]
    assert len(SMALL) < 0xFFFE
    refused(patched(LENET, root, "<i", 2**30), "vtable of Model outside the buffer")
    refused(patched(LENET, root, "<i", -(2**30)), "vtable of Model outside the buffer")
    refused(patched(LENET, root, "<i", soffset + 1), "vtable of Model outside")  # odd position
    refused(patched(LENET, vt, "<H", 7), "vtable size 7 of Model is odd")
    refused(patched(SMALL, small_vt, "<H", 0xFFFE), "vtable size 65534 of Model is odd or runs past the end")
    refused(patched(LENET, vt, "<H", 2), "vtable size 2 of Model is under 4")
    refused(patched(LENET, vt + 2, "<H", 2), "Model table size 2 is under 4")
    refused(patched(SMALL, small_vt + 2, "<H", 0xFFFF), "Model table size 65535 is under 4 or runs past the end")
    # A field slot pointing past the table's inline size, or over its vtable offset.
    refused(patched(LENET, vt + 4, "<H", 0xFFF0), "field version at offset 65520 lies outside")
    refused(patched(LENET, vt + 4, "<H", 2), "field version at offset 2 lies outside")


def test_fields_offsets_vectors_strings():
    m = tflite.Model.GetRootAs(LENET, 0)
    buffers = field_pos(m, 12)  # uoffset to Model.buffers
    refused(patched(LENET, buffers, "<I", 0), "buffers points outside the buffer")
    refused(patched(LENET, buffers, "<I", len(LENET)), "buffers points outside")
    refused(patched(LENET, buffers, "<I", 0xFFFFFFFF), "buffers points outside")
    refused(patched(LENET, buffers, "<I", struct.unpack_from("<I", LENET, buffers)[0] + 2), "vector buffers misaligned")
    vec = buffers + struct.unpack_from("<I", LENET, buffers)[0]
    for length in (0xFFFFFFFF, 0x7FFFFFFF, 0x40000000, len(LENET) // 4):
        refused(patched(LENET, vec, "<I", length), "vector buffers of .* runs past the end")
    # A vector element (uoffset to a table) pointing at itself, backwards (as unsigned), and outside.
    first = vec + 4
    refused(patched(LENET, first, "<I", 0), r"Model.buffers\[0\]")
    refused(patched(LENET, first, "<I", 2**32 - 8), r"Model.buffers\[0\]: Buffer table misaligned or out of bounds")
    # A scalar made misaligned by moving its slot one byte.
    sg = m.Subgraphs(0)
    t0 = sg.Tensors(0)
    name_pos = field_pos(t0, 10)
    name = name_pos + struct.unpack_from("<I", LENET, name_pos)[0]
    (length,) = struct.unpack_from("<I", LENET, name)
    refused(patched(LENET, name + 4 + length, "<B", ord("x")), r"subgraphs\[0\].tensors\[0\].name: string name is not zero")
    refused(patched(LENET, name, "<I", len(LENET)), "vector name of")


def test_misaligned_scalar():
    m = tflite.Model.GetRootAs(LENET, 0)
    t0 = m.Subgraphs(0).Tensors(0)
    vt = t0._tab.Pos - struct.unpack_from("<i", LENET, t0._tab.Pos)[0]
    buffer_slot = vt + 8  # Tensor.buffer: a uint
    fo = struct.unpack_from("<H", LENET, buffer_slot)[0]
    if fo:
        refused(patched(LENET, buffer_slot, "<H", fo + 1), "field buffer misaligned")


def unknown_slots_model(extra_union_type: int | None = None, drop_value: bool = False) -> bytes:
    """A Model whose vtable has slots past the schema's (a newer file), and an Operator with a union."""
    b = flatbuffers.Builder(256)
    b.StartObject(1)  # any table, as a union value
    b.PrependInt32Slot(0, 1, 0)
    value = b.EndObject()
    b.StartObject(12)
    b.PrependUint32Slot(0, 0, 0)
    if extra_union_type is not None:
        b.PrependUint8Slot(3, extra_union_type, 0)
        if not drop_value:
            b.PrependUOffsetTRelativeSlot(4, value, 0)
    op = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(op)
    ops = b.EndVector()
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(3, ops, 0)
    sg = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(sg)
    sgs = b.EndVector()
    b.StartObject(40)  # 40 slots: 30 more than the schema knows
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, sgs, 0)
    b.PrependUint32Slot(39, 0xDEADBEEF, 0)  # a newer field: ignored, as flatbuffers does
    b.PrependUint8Slot(37, 7, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_newer_fields_and_union_members_are_accepted():
    verify_model(unknown_slots_model())
    verify_model(unknown_slots_model(extra_union_type=250))  # a union member this schema does not know
    verify_model(unknown_slots_model(extra_union_type=tflite.BuiltinOptions.AddOptions))
    verify_model(unknown_slots_model(extra_union_type=0))  # NONE with a value: the value is not read
    refused(unknown_slots_model(extra_union_type=tflite.BuiltinOptions.AddOptions, drop_value=True),
            "union builtin_options has type 11 but no value")  # fmt: skip
    verify_model(unknown_slots_model(extra_union_type=250, drop_value=True))


def shared_table_bomb(subgraphs: int, tensors: int, distinct_subgraphs: bool) -> bytes:
    """A tiny file whose offsets reach one Tensor table subgraphs * tensors times."""
    b = flatbuffers.Builder(1024)
    b.StartObject(11)
    b.PrependInt8Slot(1, tflite.TensorType.INT8, 0)
    tensor = b.EndObject()
    b.StartVector(4, tensors, 4)
    for _ in range(tensors):
        b.PrependUOffsetTRelative(tensor)
    vec = b.EndVector()
    sgs = []
    for _ in range(subgraphs if distinct_subgraphs else 1):
        b.StartObject(6)
        b.PrependUOffsetTRelativeSlot(0, vec, 0)
        sgs.append(b.EndObject())
    b.StartVector(4, subgraphs, 4)
    for i in range(subgraphs):
        b.PrependUOffsetTRelative(sgs[i % len(sgs)])
    sg_vec = b.EndVector()
    b.StartObject(10)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, sg_vec, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("distinct", [False, True])
def test_shared_tables_count_like_flatbuffers_and_stay_fast(distinct):
    over = shared_table_bomb(600, 2000, distinct)  # 1,200,000+ table visits in C++, from ~15 kB
    under = shared_table_bomb(400, 2000, distinct)  # 800,401 visits: within flatbuffers' limit
    assert len(over) < 20_000
    start = time.perf_counter()
    refused(over, "more than 1000000 tables")
    verify_model(under)
    assert time.perf_counter() - start < 2.0


def test_limits_are_enforced(monkeypatch):
    # TFLite's schema nests at most ~6 tables, far under flatbuffers' 64, so the depth limit is shown with a smaller one.
    monkeypatch.setattr(verify, "MAX_DEPTH", 3)
    refused(LENET, r"nested more than 3 deep")
    monkeypatch.setattr(verify, "MAX_DEPTH", 64)
    monkeypatch.setattr(verify, "MAX_TABLES", 20)
    refused(LENET, "more than 20 tables")


def test_the_reader_verifies_first():
    m = tflite.Model.GetRootAs(LENET, 0)
    t0 = m.Subgraphs(0).Tensors(0)
    vt = t0._tab.Pos - struct.unpack_from("<i", LENET, t0._tab.Pos)[0]
    with pytest.raises(TFLiteFormatError, match=r"^<bytes>: corrupt .tflite: Model.subgraphs\[0\].tensors\[0\]: vtable"):
        read_tflite(patched(LENET, vt, "<H", 3))


# ---------------------------------------------------------------- mutants: only TFLiteFormatError, fast, small


def check_mutant(data: bytes) -> bool:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        verify_model(data, "mutant")
        ok = True
    except TFLiteFormatError:
        ok = False
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 2.0 and peak < 64 << 20, (elapsed, peak)
    if ok:  # what the verifier passes, the reader reads or refuses with an edgecnn error
        try:
            read_tflite(data)
        except EdgecnnError:
            pass
    return ok


def test_seeded_mutants_of_every_kind():
    rng = np.random.default_rng(11)
    for data in (LENET, SMALL):
        ranges = structural_ranges(data)
        refusals = 0
        for kind in MUTATIONS:
            for _ in range(12):
                _, mutant = mutate(data, rng, ranges, kind)
                refusals += not check_mutant(mutant)
        assert refusals > 12  # the mutations hit structure, not just weights


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(SMALL)))  # fmt: skip
def test_byte_edits_and_truncations(edits, cut):
    data = bytearray(SMALL)
    for pos, value in edits:
        data[pos] = value
    check_mutant(bytes(data[:cut]) if cut < len(SMALL) // 2 else bytes(data))


# ---------------------------------------------------------------- LiteRT as the judge


def test_litert_verifier_agrees_on_structural_corruption(tmp_path):
    """LiteRT's loader runs flatc's VerifyModelBuffer: its verdict and ours must match,
    except for verify.py's documented stricter checks. LiteRT's other refusals (tensor
    sizes, op versions, ...) are not structural and not compared."""
    rng = np.random.default_rng(5)
    ranges = structural_ranges(LENET)
    paths, mutants = [], []
    for i in range(150):
        _, mutant = mutate(LENET, rng, ranges)
        path = tmp_path / f"m{i}.tflite"
        path.write_bytes(mutant)
        paths.append(str(path))
        mutants.append(mutant)
    verdicts = litert_verdicts(paths)
    litert_refused = ours_refused = 0
    for mutant, verdict in zip(mutants, verdicts):
        try:
            verify_model(mutant, "mutant")
            message = None
        except TFLiteFormatError as e:
            message = str(e)
        if verdict == "verifier":
            litert_refused += 1
            assert message is not None, "LiteRT's verifier refuses a file edgecnn's verifier accepts"
        elif message is not None:
            assert is_stricter_check(message), f"LiteRT's verifier passes what edgecnn refuses: {message}"
        ours_refused += message is not None
    assert litert_refused > 20 and ours_refused >= litert_refused
