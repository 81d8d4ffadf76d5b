"""Regenerate `deploy/tflite/schema_layout.py` from TFLite's `schema.fbs`.

    python benchmarks/gen_tflite_schema_layout.py SCHEMA.fbs --source "repo@commit path" \
        > deploy/tflite/schema_layout.py

The verifier (`deploy/tflite/verify.py`) needs to know, for every table of the
schema, which vtable slot holds what: a scalar of which size, an offset to a
table (of which type), a string, a vector of scalars / tables / strings, or a
union (a one-byte type slot followed by the value's offset slot). This script
reads that from the schema itself with a small parser for the .fbs subset
schema.fbs uses (namespace, file_identifier, file_extension, attribute,
root_type, enums, unions, tables, structs, vectors, defaults, field and
member attributes such as `deprecated`, `force_align`, `id`), so the layout is
never typed by hand.

`schema.fbs` is not shipped by the `tflite` or `ai_edge_litert` wheels: take it
from google-ai-edge/LiteRT, `tflite/converter/schema/schema.fbs` (or the older
tensorflow/tensorflow `tensorflow/compiler/mlir/lite/schema/schema.fbs`), from
the commit the installed ai_edge_litert was built from if possible:
tests/test_tflite_verify.py checks the result slot for slot against
ai_edge_litert's flatc-generated `schema_py_generated.py` and names any field
the schema used lacks (the committed layout's header says how that was met).

With `--flatc PATH` (e.g. Debian's flatbuffers-compiler; development only, never
a runtime or CI dependency) the script also compiles the schema with flatc and
checks every table's vtable slots and verifier calls in the generated C++
`Verify()` against the parsed layout, failing loudly on any difference.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SCALAR_SIZES = {
    "bool": 1, "byte": 1, "ubyte": 1, "int8": 1, "uint8": 1,
    "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
    "long": 8, "ulong": 8, "int64": 8, "uint64": 8, "double": 8, "float64": 8,
}  # fmt: skip

_TOKEN = re.compile(
    r"""\s+|//[^\n]*|/\*.*?\*/                # whitespace and comments (skipped)
      |(?P<str>"(?:[^"\\]|\\.)*")
      |(?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?))
      |(?P<id>[A-Za-z_][A-Za-z0-9_.]*)
      |(?P<punct>[{}()\[\]:;=,])""",
    re.S | re.X,
)


class SchemaError(Exception):
    pass


def tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise SchemaError(f"line {line}: unexpected {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup:
            tokens.append(m.group(m.lastgroup))
    return tokens


class Parser:
    """The .fbs subset: declarations in, dicts out (no code generation)."""

    def __init__(self, text: str):
        self.t = tokenize(text)
        self.i = 0
        self.enums: dict[str, str] = {}  # name -> underlying scalar type
        self.unions: dict[str, list[tuple[str, int]]] = {}  # name -> [(table, type value)]
        self.tables: dict[str, list[dict]] = {}
        self.structs: dict[str, list[dict]] = {}
        self.struct_attrs: dict[str, dict] = {}
        self.order: list[str] = []
        self.root_type = None
        self.file_identifier = None
        self.namespace = None

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def next(self):
        if self.i >= len(self.t):
            raise SchemaError("unexpected end of schema")
        self.i += 1
        return self.t[self.i - 1]

    def expect(self, tok):
        got = self.next()
        if got != tok:
            raise SchemaError(f"expected {tok!r}, got {got!r} (token {self.i})")

    def attributes(self) -> dict:
        attrs = {}
        if self.peek() == "(":
            self.next()
            while self.peek() != ")":
                key = self.next()
                attrs[key] = self.next() if self.peek() == ":" and self.next() else True
                if self.peek() == ",":
                    self.next()
            self.next()
        return attrs

    def type_ref(self):
        if self.peek() == "[":
            self.next()
            elem = self.next()
            self.expect("]")
            return ("vector", elem)
        return ("single", self.next())

    def parse(self):
        while self.peek() is not None:
            kw = self.next()
            if kw == "namespace":
                self.namespace = self.next()
                self.expect(";")
            elif kw in ("file_identifier", "file_extension", "attribute"):
                value = self.next().strip('"')
                self.expect(";")
                if kw == "file_identifier":
                    self.file_identifier = value
            elif kw == "root_type":
                self.root_type = self.next()
                self.expect(";")
            elif kw == "enum":
                self.enum()
            elif kw == "union":
                self.union()
            elif kw in ("table", "struct"):
                self.table(kw)
            else:
                raise SchemaError(f"unsupported declaration {kw!r} (include, rpc_service: not in schema.fbs)")
        return self

    def enum(self):
        name = self.next()
        self.expect(":")
        underlying = self.next()
        if underlying not in SCALAR_SIZES:
            raise SchemaError(f"enum {name}: underlying type {underlying!r}")
        self.attributes()
        self.expect("{")
        while self.next() != "}":  # values never matter to the layout
            pass
        self.enums[name] = underlying

    def union(self):
        name = self.next()
        self.attributes()
        self.expect("{")
        members, value = [], 0
        while self.peek() != "}":
            member = self.next()
            if self.peek() == ":":  # Alias: Type
                self.next()
                member = self.next()
            if self.peek() == "=":
                self.next()
                value = int(self.next(), 0) - 1
            value += 1
            self.attributes()
            members.append((member, value))
            if self.peek() == ",":
                self.next()
        self.next()
        self.unions[name] = members

    def table(self, kind):
        name = self.next()
        attrs = self.attributes()
        self.expect("{")
        fields = []
        while self.peek() != "}":
            fname = self.next()
            self.expect(":")
            ref = self.type_ref()
            if self.peek() == "=":
                self.next()
                self.next()  # default value: irrelevant to the layout
            attrs = self.attributes()
            self.expect(";")
            fields.append({"name": fname, "type": ref, "attrs": attrs})
        self.next()
        (self.tables if kind == "table" else self.structs)[name] = fields
        if kind == "struct":
            self.struct_attrs[name] = attrs
        self.order.append(name)


class Layout:
    """Parsed declarations -> per-table slot descriptions."""

    def __init__(self, p: Parser):
        self.p = p

    def short(self, name):
        # Types may be written qualified (tflite.Buffer); the schema has one namespace.
        return name.rsplit(".", 1)[-1]

    def scalar_size(self, name):
        name = self.short(name)
        if name in SCALAR_SIZES:
            return SCALAR_SIZES[name]
        if name in self.p.enums:
            return SCALAR_SIZES[self.p.enums[name]]
        return None

    def struct_size_align(self, name):
        """(size, alignment) of a struct: each field at its own alignment, size padded to the largest."""
        off, align = 0, 1
        for f in self.p.structs[name]:
            kind, t = f["type"]
            if kind == "vector":
                raise SchemaError(f"struct {name}: vector field {f['name']}")
            s = self.scalar_size(t)
            if s is not None:
                fs, fa = s, s
            elif self.short(t) in self.p.structs:
                fs, fa = self.struct_size_align(self.short(t))
            else:
                raise SchemaError(f"struct {name}: field type {t}")
            off = -(-off // fa) * fa + fs
            align = max(align, fa)
        align = max(align, int(self.p.struct_attrs.get(name, {}).get("force_align", 1)))
        return -(-off // align) * align, align

    def field_slots(self, table):
        """[(slot_index, field dict)] in slot order, unions taking two slots."""
        fields = self.p.tables[table]
        ids = [f["attrs"].get("id") for f in fields]
        if any(i is not None for i in ids):
            if any(i is None for i in ids):
                raise SchemaError(f"table {table}: some fields have an id, others not")
            out = []
            for f in fields:
                slot = int(f["attrs"]["id"])
                is_union = f["type"][0] == "single" and self.short(f["type"][1]) in self.p.unions
                out.append((slot - 1, f, "type") if is_union else (slot, f, None))
                if is_union:
                    out.append((slot, f, "value"))
            return sorted(out, key=lambda x: x[0])
        out, slot = [], 0
        for f in fields:
            if f["type"][0] == "single" and self.short(f["type"][1]) in self.p.unions:
                out.append((slot, f, "type"))
                out.append((slot + 1, f, "value"))
                slot += 2
            else:
                out.append((slot, f, None))
                slot += 1
        return out

    def describe(self, table):
        rows = []
        for slot, f, part in self.field_slots(table):
            if f["attrs"].get("deprecated"):
                continue  # flatc generates no accessor and no check for it
            voffset = 4 + 2 * slot
            kind, t = f["type"]
            t = self.short(t)
            name = f["name"]
            if part == "type":
                rows.append((name + "_type", voffset, "scalar", 1))
            elif part == "value":
                rows.append((name, voffset, "union", t))
            elif kind == "single":
                if self.scalar_size(t) is not None:
                    rows.append((name, voffset, "scalar", self.scalar_size(t)))
                elif t == "string":
                    rows.append((name, voffset, "string", None))
                elif t in self.p.tables:
                    rows.append((name, voffset, "table", t))
                elif t in self.p.structs:
                    rows.append((name, voffset, "struct", self.struct_size_align(t)))
                else:
                    raise SchemaError(f"{table}.{name}: unknown type {t}")
            else:
                if self.scalar_size(t) is not None:
                    rows.append((name, voffset, "vector", self.scalar_size(t)))
                elif t == "string":
                    rows.append((name, voffset, "vector_string", None))
                elif t in self.p.tables:
                    rows.append((name, voffset, "vector_table", t))
                elif t in self.p.structs:
                    rows.append((name, voffset, "vector", self.struct_size_align(t)[0]))
                elif t in self.p.unions:
                    raise SchemaError(f"{table}.{name}: vectors of unions are not supported")
                else:
                    raise SchemaError(f"{table}.{name}: unknown element type {t}")
        return rows


def render(p: Parser, layout: Layout, source: str, flatc_note: str) -> str:
    out = [
        '"""The TFLite schema\'s table layouts, for `verify.py` (GENERATED: do not edit).',
        "",
        "Generated by `python benchmarks/gen_tflite_schema_layout.py SCHEMA.fbs` from",
        *(f"    {part}" for part in source.split(" | ")),
        f"{flatc_note}",
        "",
        "TABLES: table name -> ((field name, vtable offset, kind, argument), ...), where kind is",
        '  "scalar" (argument: size in bytes; also the one-byte type slot of a union),',
        '  "table" / "vector_table" (argument: the table\'s name), "string", "vector_string",',
        '  "vector" (argument: element size), "struct" (argument: (size, alignment)),',
        '  "union" (argument: the union\'s name; its type slot is the field just before it).',
        "UNIONS: union name -> {type value: table name}.",
        "Deprecated fields are left out: flatc generates neither an accessor nor a check for them.",
        '"""',
        "",
        f"ROOT_TABLE = {p.root_type!r}",
        f"FILE_IDENTIFIER = {p.file_identifier.encode()!r}",
        "",
        "UNIONS = {",
    ]
    for name, members in p.unions.items():
        out.append(f"    {name!r}: {{")
        for member, value in members:
            out.append(f"        {value}: {member!r},")
        out.append("    },")
    out += ["}", "", "TABLES = {"]
    for name in p.order:
        if name not in p.tables:
            continue
        rows = layout.describe(name)
        if not rows:
            out.append(f"    {name!r}: (),")
            continue
        out.append(f"    {name!r}: (")
        for row in rows:
            out.append(f"        {row!r},")
        out.append("    ),")
    out += ["}", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- cross-check with flatc (development only)

_CPP_CHECK = re.compile(
    r"VerifyField<(?P<ctype>\w+)>\(verifier, VT_(?P<f1>\w+), (?P<align>\d+)\)"
    r"|VerifyOffset\(verifier, VT_(?P<f2>\w+)\)"
    r"|verifier\.(?P<call>VerifyVectorOfTables|VerifyVectorOfStrings|VerifyVector|VerifyString|VerifyTable)\((?P<arg>\w+)\(\)\)"
    r"|Verify(?P<union>\w+)\(verifier, (?P<uval>\w+)\(\), (?P<utype>\w+)\(\)\)"
)
_CTYPE_SIZES = {"uint8_t": 1, "int8_t": 1, "uint16_t": 2, "int16_t": 2, "uint32_t": 4, "int32_t": 4, "float": 4,
                "uint64_t": 8, "int64_t": 8, "double": 8}  # fmt: skip


def flatc_check(flatc: str, schema_text: str, p: Parser, layout: Layout) -> str:
    """Compile the schema with flatc and compare its C++ verifier with our layout."""
    with tempfile.TemporaryDirectory() as d:
        text = schema_text
        src = Path(d) / "schema.fbs"
        src.write_text(text)
        r = subprocess.run([flatc, "--cpp", "-o", d, str(src)], capture_output=True, text=True)
        if r.returncode != 0 and "expecting: } instead got: (" in r.stdout + r.stderr:
            # flatc < 23 rejects attributes on enum values and union members
            # (`REDUCE_WINDOW = 205 (deprecated)`); they do not change the layout.
            text = re.sub(r"(\w+(?:\s*=\s*\d+)?)\s*\(deprecated\)\s*,", r"\1,", text)
            src.write_text(text)
            r = subprocess.run([flatc, "--cpp", "-o", d, str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SchemaError(f"flatc failed: {r.stdout}{r.stderr}")
        header = (Path(d) / "schema_generated.h").read_text()
        version = subprocess.run([flatc, "--version"], capture_output=True, text=True).stdout.strip()
    checked = 0
    for name in p.tables:
        m = re.search(rf"struct {name} FLATBUFFERS_FINAL_CLASS.*?\n}};", header, re.S)
        if not m:
            raise SchemaError(f"flatc output has no table {name}")
        body = m.group(0)
        slots = {k: int(v) for k, v in re.findall(r"VT_(\w+) = (\d+)", body)}
        vm = re.search(r"bool Verify\(flatbuffers::Verifier &verifier\) const \{(.*?)\n  \}", body, re.S)
        ours = {row[0].upper(): row for row in layout.describe(name)}
        if set(slots) != set(ours):
            raise SchemaError(f"{name}: flatc fields {sorted(slots)} != ours {sorted(ours)}")
        for key, voff in slots.items():
            if ours[key][1] != voff:
                raise SchemaError(f"{name}.{key}: flatc slot {voff}, ours {ours[key][1]}")
        seen = {}
        for c in _CPP_CHECK.finditer(vm.group(1)):
            if c.group("f1"):
                seen.setdefault(c.group("f1"), []).append(("scalar", _CTYPE_SIZES.get(c.group("ctype"))))
            elif c.group("f2"):
                seen.setdefault(c.group("f2"), []).append(("offset",))
            elif c.group("call"):
                seen.setdefault(c.group("arg").upper(), []).append((c.group("call"),))
            elif c.group("union"):
                seen.setdefault(c.group("uval").upper(), []).append(("union", c.group("union")))
        for key, row in ours.items():
            kind = row[2]
            want = {
                "scalar": [("scalar", row[3])],
                "table": [("offset",), ("VerifyTable",)],
                "string": [("offset",), ("VerifyString",)],
                "vector": [("offset",), ("VerifyVector",)],
                "vector_table": [("offset",), ("VerifyVector",), ("VerifyVectorOfTables",)],
                "vector_string": [("offset",), ("VerifyVector",), ("VerifyVectorOfStrings",)],
                "union": [("offset",), ("union", row[3])],
            }.get(kind)
            if want is not None and seen.get(key) != want:
                raise SchemaError(f"{name}.{key}: flatc verifies {seen.get(key)}, ours says {kind} {row[3]!r}")
            checked += 1
    return f"Cross-checked against the C++ verifier `{version}` generates: {checked} fields, every slot and check equal."


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("schema", type=Path)
    ap.add_argument("--source", default=None, help="where the schema came from (repository@commit path; ' | ' breaks lines)")
    ap.add_argument("--flatc", default=None, help="flatc binary to cross-check with (development only)")
    args = ap.parse_args(argv)
    text = args.schema.read_text()
    p = Parser(text).parse()
    layout = Layout(p)
    for name in p.tables:
        layout.describe(name)
    note = "(not cross-checked with flatc)"
    if args.flatc:
        note = flatc_check(args.flatc, text, p, layout)
    source = args.source or str(args.schema)
    sys.stdout.write(render(p, layout, source, note))


if __name__ == "__main__":
    main()
