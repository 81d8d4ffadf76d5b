"""The flatbuffer verifier for `.tflite` files, run before anything reads them.

The flatbuffers Python runtime and the `tflite` package's accessors trust the
bytes: a bad offset reads garbage, raises a low-level error deep in the reader,
or sends it somewhere absurd. LiteRT's C++ loader first runs
`VerifyModelBuffer`, the verifier flatc generates from schema.fbs; this module
performs the same checks, from the same schema (`schema_layout.py`, generated
from schema.fbs), so a file either passes before the reader sees it or is
refused with one `TFLiteFormatError`:

    <name>: corrupt .tflite: <where in the model>: <what> at byte <offset>

The checks are those of flatbuffers' `Verifier` (flatbuffers/verifier.h):
  - the buffer: at least 12 bytes, file identifier "TFL3", root offset in
    bounds, 4-byte aligned, non-zero and below 2^31;
  - each table: 4-byte aligned and in bounds; its vtable (table position minus
    the signed offset stored there) 2-byte aligned, in bounds, of even size,
    and lying wholly in the buffer;
  - each field the schema knows and the vtable holds: scalars aligned to their
    size and in bounds; offsets (to tables, vectors, strings, union values)
    4-byte aligned, non-zero, below 2^31 and pointing inside the buffer;
    vectors' and strings' lengths 4-byte aligned, length * element size inside
    the buffer; strings zero-terminated inside it; a union's value verified as
    the table its type names (types this schema does not know are accepted,
    as flatc's verifier does: newer files);
  - at most 64 nested tables and 1,000,000 tables in all (the C++ defaults),
    counted as the C++ verifier counts them, shared sub-tables once per
    reference.
Fields past the end of a vtable are absent, and slots past the fields the
schema knows are ignored (files from newer schemas), as in flatbuffers.

Three checks are stricter than flatc's verifier, on bytes no flatbuffers
builder writes: a vtable shorter than 4 bytes (it cannot hold the table's own
size), a field lying outside its table's inline size (or over the table's
vtable offset), and a union whose type names a known table but whose value is
missing (the reader would get no options table where its type promises one).

No recursion: one explicit stack. Work stays linear in the file: each
(position, table type) and each (position, vector type) is walked once, and a
repeated reference only adds the table count and depth its first walk
measured, so a hostile file sharing one sub-table a million times costs a
million dictionary look-ups, not a million walks.
"""

from __future__ import annotations

import struct

from edgecnn.deploy.tflite import schema_layout
from edgecnn.errors import TFLiteFormatError

MAX_DEPTH = 64  # flatbuffers::Verifier::Options defaults, as LiteRT uses them
MAX_TABLES = 1_000_000
MAX_BUFFER_SIZE = 2**31 - 1  # FLATBUFFERS_MAX_BUFFER_SIZE for 32-bit offsets
MIN_BUFFER_SIZE = 12  # root uoffset + soffset + vtable size + table size

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from

# Field kinds, compiled from schema_layout's names into small integers.
_SCALAR, _STRUCT, _TABLE, _STRING, _VECTOR, _VECTOR_TABLE, _VECTOR_STRING, _UNION = range(8)
_KINDS = {
    "scalar": _SCALAR, "struct": _STRUCT, "table": _TABLE, "string": _STRING, "vector": _VECTOR,
    "vector_table": _VECTOR_TABLE, "vector_string": _VECTOR_STRING, "union": _UNION,
}  # fmt: skip


def _compile():
    """schema_layout's TABLES -> per table id: (((vtable slot, kind, arg, name, inline size, alignment), ...),
    number of vtable entries to read)."""
    names = list(schema_layout.TABLES)
    ids = {n: i for i, n in enumerate(names)}
    unions = {u: {t: ids[table] for t, table in members.items()} for u, members in schema_layout.UNIONS.items()}
    tables = []
    for name in names:
        fields = []
        for fname, voffset, kind, arg in schema_layout.TABLES[name]:
            code = _KINDS[kind]
            if code == _SCALAR:
                size = align = arg
            elif code == _STRUCT:
                size, align = arg
            else:
                size = align = 4  # a uoffset
            if code in (_TABLE, _VECTOR_TABLE):
                arg = ids[arg]
            elif code == _UNION:
                arg = unions[arg]
            fields.append((voffset >> 1, code, arg, fname, size, align))
        # Union values go last so that their type slots are already read.
        fields.sort(key=lambda f: f[1] == _UNION)
        # How many u16 of a vtable to read: its two sizes and the slots this schema knows.
        known = max((f[0] for f in fields), default=1) + 1
        tables.append((tuple(fields), known))
    return names, tuple(tables), ids[schema_layout.ROOT_TABLE]


_VTABLE_READERS: dict = {}


def _vtable_reader(count: int):
    """unpack_from for `count` little-endian u16 (a vtable's head), made once per count."""
    reader = _VTABLE_READERS.get(count)
    if reader is None:
        reader = _VTABLE_READERS[count] = struct.Struct(f"<{count}H").unpack_from
    return reader


_TABLE_NAMES, _TABLES, _ROOT = _compile()
assert len(_TABLE_NAMES) < 512  # table ids fit the 9 bits the walk's memo keys give them

# Stack entries: (what, position, type, depth, where). `where` is a linked list
# of tuples (parent where, field name, element index or None), formatted only
# for an error message.
_ENTER_TABLE, _VECTOR_OF_TABLES, _VECTOR_OF_STRINGS, _EXIT = range(4)


class _Corrupt(Exception):
    def __init__(self, where, what: str, offset: int):
        self.where, self.what, self.offset = where, what, offset


def _format_where(where) -> str:
    parts = []
    while where is not None:
        where, field, index = where
        parts.append(field if index is None else f"{field}[{index}]")
    return ".".join(reversed(parts))


def verify_model(data: bytes, name: str = "<bytes>") -> None:
    """Raise TFLiteFormatError unless `data` passes the flatbuffers verifier for TFLite's schema."""
    try:
        _verify(bytes(data) if not isinstance(data, bytes) else data)
    except _Corrupt as e:
        where = f"{_format_where(e.where)}: " if e.where is not None else ""
        raise TFLiteFormatError(f"{name}: corrupt .tflite: {where}{e.what} at byte {e.offset}") from None


def _verify(data: bytes) -> None:
    # The C++ verifier works on at most 2 GiB - 1 bytes; larger files keep
    # their constant data past the flatbuffer (Buffer.offset), which the
    # reader bounds-checks itself.
    n = min(len(data), MAX_BUFFER_SIZE - 1)
    root_where = (None, schema_layout.ROOT_TABLE, None)
    if n < MIN_BUFFER_SIZE:
        raise _Corrupt(None, f"{len(data)} bytes is too short for a flatbuffer (at least {MIN_BUFFER_SIZE})", 0)
    if data[4:8] != schema_layout.FILE_IDENTIFIER:
        raise _Corrupt(None, f"file identifier {data[4:8]!r}, expected {schema_layout.FILE_IDENTIFIER!r}", 4)
    (root,) = _U32(data, 0)
    if root == 0 or root >= 2**31 or root >= n:
        raise _Corrupt(None, f"root table offset {root} outside the {n}-byte buffer", 0)

    tables = _TABLES
    table_count = 0
    max_depth_seen = 0
    # (position << 11 | entry kind << 9 | table id) -> (tables counted << 8 | height) of a finished walk
    done: dict = {}
    stack = [(_ENTER_TABLE, root, _ROOT, 1, root_where)]
    pop, push = stack.pop, stack.append

    def offset_at(p: int, where, field: str) -> int:
        """Follow the uoffset stored at byte p (flatbuffers' VerifyOffset)."""
        if p & 3 or p > n - 4:
            raise _Corrupt(where, f"offset field {field} misaligned or out of bounds", p)
        (o,) = _U32(data, p)
        if o == 0 or o >= 2**31 or p + o >= n:
            raise _Corrupt(where, f"{field} points outside the buffer (offset {o})", p)
        return p + o

    def vector_at(v: int, elem_size: int, where, field: str) -> int:
        """The length of the vector at v, checked to fit (VerifyVectorOrString)."""
        if v & 3 or v > n - 4:
            raise _Corrupt(where, f"vector {field} misaligned or out of bounds", v)
        (length,) = _U32(data, v)
        byte_size = 4 + elem_size * length
        if length >= MAX_BUFFER_SIZE // elem_size or byte_size >= n or v > n - byte_size:
            raise _Corrupt(where, f"vector {field} of {length} x {elem_size} bytes runs past the end of the buffer", v)
        return length

    def string_at(s: int, where, field: str) -> None:
        length = vector_at(s, 1, where, field)
        end = s + 4 + length
        if end >= n or data[end] != 0:
            raise _Corrupt(where, f"string {field} is not zero-terminated inside the buffer", s)

    while stack:
        what, pos, tid, depth, where = pop()

        if what == _EXIT:  # a table or vector's walk ended: remember what it cost
            entry_depth, count_before, seen_before, key = pos, tid, depth, where
            done[key] = (table_count - count_before) << 8 | (max_depth_seen - entry_depth + 1)
            max_depth_seen = max(max_depth_seen, seen_before)
            continue

        key = pos << 11 | what << 9 | tid
        hit = done.get(key)
        if hit is not None:  # walked before: count it again without walking it again
            table_count += hit >> 8
            deepest = depth + (hit & 255) - 1
            if table_count > MAX_TABLES:
                raise _Corrupt(where, f"more than {MAX_TABLES} tables (the flatbuffers verifier's limit)", pos)
            if deepest > MAX_DEPTH:
                raise _Corrupt(where, f"tables nested more than {MAX_DEPTH} deep", pos)
            if deepest > max_depth_seen:
                max_depth_seen = deepest
            continue
        if what != _ENTER_TABLE:
            # pos: a vector of uoffsets, already checked to fit; each element
            # is a table (or string) of its own, at this entry's depth. The
            # height stored at its exit is measured from that depth.
            push((_EXIT, depth, table_count, max_depth_seen, key))
            max_depth_seen = depth - 1
            (length,) = _U32(data, pos)
            parent, field = where[0], where[1]
            if what == _VECTOR_OF_TABLES:  # pushed last to first, so walked first to last
                for i in range(length - 1, -1, -1):
                    e = pos + 4 + 4 * i
                    (o,) = _U32(data, e)
                    push((_ENTER_TABLE, e + o, tid, depth, (parent, field, i)))
            else:
                e = pos + 4
                for i in range(length):
                    (o,) = _U32(data, e)
                    string_at(e + o, (parent, field, i), field)
                    e += 4
            continue

        # ---- a table at pos of type tid (flatbuffers' VerifyTableStart, then each field)
        t = pos
        if t & 3 or t > n - 4:
            raise _Corrupt(where, f"{_TABLE_NAMES[tid]} table misaligned or out of bounds", t)
        count_before = table_count
        table_count += 1
        if depth > MAX_DEPTH:
            raise _Corrupt(where, f"tables nested more than {MAX_DEPTH} deep", t)
        if table_count > MAX_TABLES:
            raise _Corrupt(where, f"more than {MAX_TABLES} tables (the flatbuffers verifier's limit)", t)
        (soffset,) = _I32(data, t)
        vt = t - soffset
        if vt < 0 or vt & 1 or vt > n - 2:
            raise _Corrupt(where, f"vtable of {_TABLE_NAMES[tid]} outside the buffer (soffset {soffset})", t)
        (vsize,) = _U16(data, vt)
        if vsize & 1 or vsize >= n or vt > n - vsize:
            raise _Corrupt(where, f"vtable size {vsize} of {_TABLE_NAMES[tid]} is odd or runs past the end", vt)
        if vsize < 4:  # stricter than flatc: no room for the table's own size
            raise _Corrupt(where, f"vtable size {vsize} of {_TABLE_NAMES[tid]} is under 4", vt)
        fields, known = tables[tid]
        slots = vsize >> 1
        if slots > known:
            slots = known  # slots past the schema's fields: a newer file's, ignored
        vtable = _vtable_reader(slots)(data, vt)
        tsize = vtable[1]
        if tsize < 4 or tsize >= n or t > n - tsize:  # stricter than flatc, which never reads it
            raise _Corrupt(where, f"{_TABLE_NAMES[tid]} table size {tsize} is under 4 or runs past the end", vt + 2)

        children = []  # sub-tables and vectors of them, walked after this table, in field order
        for slot, code, arg, fname, size, align in fields:
            fo = vtable[slot] if slot < slots else 0
            if code == _UNION:
                # The type slot (the one before) is a scalar checked earlier in this loop.
                type_fo = vtable[slot - 1] if slot - 1 < slots else 0
                utype = data[t + type_fo] if type_fo else 0
                if not fo:
                    if utype in arg:  # stricter than flatc, which accepts a missing value
                        raise _Corrupt(where, f"union {fname} has type {utype} but no value", vt + 2 * slot)
                    continue
            elif not fo:
                continue
            if fo < 4 or fo + size > tsize:  # stricter than flatc, which only bounds it by the buffer
                raise _Corrupt(where, f"field {fname} at offset {fo} lies outside its {tsize}-byte table", vt + 2 * slot)
            p = t + fo
            if code == _SCALAR or code == _STRUCT:
                if p & (align - 1) or p > n - size:
                    raise _Corrupt(where, f"field {fname} misaligned or out of bounds", p)
                continue
            target = offset_at(p, where, fname)
            child = (where, fname, None)
            if code == _TABLE:
                children.append((_ENTER_TABLE, target, arg, depth + 1, child))
            elif code == _STRING:
                string_at(target, child, fname)
            elif code == _VECTOR:
                vector_at(target, arg, child, fname)
            elif code == _VECTOR_TABLE:
                vector_at(target, 4, child, fname)
                children.append((_VECTOR_OF_TABLES, target, arg, depth + 1, child))
            elif code == _VECTOR_STRING:
                vector_at(target, 4, child, fname)
                children.append((_VECTOR_OF_STRINGS, target, 0, depth + 1, child))
            else:  # a union's value: verify it as the table its type names
                member = arg.get(utype)
                if member is not None:
                    children.append((_ENTER_TABLE, target, member, depth + 1, child))

        if children:  # walk them, then (at _EXIT) remember what this table's walk cost
            push((_EXIT, depth, count_before, max_depth_seen, key))
            max_depth_seen = depth
            children.reverse()
            stack.extend(children)
        else:  # a leaf: one table, height 1
            done[key] = 1 << 8 | 1
            if depth > max_depth_seen:
                max_depth_seen = depth
