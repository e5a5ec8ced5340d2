"""The device SDK's hand-written reply reader agrees with the .fbs schema: every slot, name and type."""
import pathlib
import re

import pytest

from mindspore_federated.client.messages import replies

SCHEMA_DIR = pathlib.Path(replies.__file__).resolve().parents[2] / "schema"
# Reader kind -> .fbs types it may read.
KIND_TYPES = {
    "int": {"int", "int32", "ResponseCode"},
    "byte": {"byte", "int8", "CompressType"},
    "float": {"float", "float32"},
    "bool": {"bool"},
    "str": {"string"},
    "ms": {"string"},
    "bytes": {"[ubyte]", "[uint8]", "[byte]", "[int8]"},
}
_TABLE = re.compile(r"\btable\s+(\w+)\s*\{(.*?)\}", re.S)
_FIELD = re.compile(r"^(\w+)\s*:\s*(\[?\s*\w+\s*\]?)\s*(?:=\s*[^(]+)?(\([^)]*\))?$")


def parse_fbs(text):
    """table -> [(field name, type)] in slot order (honours `id:` attributes; deprecated fields keep a slot)."""
    text = re.sub(r"//[^\n]*", "", text)
    tables = {}
    for name, body in _TABLE.findall(text):
        fields = []
        for declaration in filter(None, (part.strip() for part in body.split(";"))):
            match = _FIELD.match(declaration)
            assert match, f"cannot read the field declaration {declaration!r} of table {name}"
            field, ftype, attrs = match.groups()
            explicit = re.search(r"\bid\s*:\s*(\d+)", attrs or "")
            fields.append((int(explicit.group(1)) if explicit else len(fields), field, ftype.replace(" ", "")))
        tables[name] = [(field, ftype) for _, field, ftype in sorted(fields)]
    return tables


@pytest.fixture(scope="module")
def schema():
    tables = {}
    for path in sorted(SCHEMA_DIR.glob("*.fbs")):
        tables.update(parse_fbs(path.read_text(encoding="utf-8")))
    return tables


def test_the_fbs_parser_reads_the_schema(schema):
    assert schema["FeatureMap"] == [("weight_fullname", "string"), ("data", "[float]")]
    assert schema["ResponseFLJob"][3] == ("is_selected", "bool")  # a default value does not hide a field
    assert schema["PWParams"][1] == ("p", "[ubyte]")
    sample = "table T { a:int; b:[string] (deprecated); c:float = 1.0; }"
    assert parse_fbs(sample) == {"T": [("a", "int"), ("b", "[string]"), ("c", "float")]}
    assert parse_fbs("table U { x:int (id: 1); y:int (id: 0); }") == {"U": [("y", "int"), ("x", "int")]}


def test_every_plain_field_reads_the_right_slot_and_type(schema):
    checked = 0
    for table, specs in replies.FIELD_SPECS.items():
        fields = schema[table]
        for attribute, slot, kind in specs:
            assert slot < len(fields), f"{table}.{attribute}: slot {slot} beyond the {len(fields)} fields"
            name, ftype = fields[slot]
            expected = replies.FIELD_ALIASES.get((table, attribute), attribute)
            assert name == expected, f"{table} slot {slot} is '{name}', the reader reads it as '{attribute}'"
            assert ftype in KIND_TYPES[kind], f"{table}.{name} is {ftype}, the reader reads it as {kind}"
            checked += 1
    assert checked >= 40


def test_every_followed_link_is_at_its_slot(schema):
    for (table, name), (slot, ftype) in replies.LINKS.items():
        assert schema[table][slot] == (name, ftype), f"{table} slot {slot}: {schema[table][slot]}"


def test_aliases_only_name_existing_fields(schema):
    for (table, attribute), name in replies.FIELD_ALIASES.items():
        assert any(attribute == spec[0] for spec in replies.FIELD_SPECS[table])
        assert name in dict(schema[table])


def test_every_reply_table_the_sdk_parses_is_covered(schema):
    from mindspore_federated.client.messages import ROUND_TABLES
    for _, response in ROUND_TABLES.values():
        assert response in replies.FIELD_SPECS and response in schema
        # every scalar/string field of the reply is read (vectors and tables are followed through LINKS)
        read = {replies.FIELD_ALIASES.get((response, a), a) for a, _, _ in replies.FIELD_SPECS[response]}
        linked = {name for (table, name) in replies.LINKS if table == response}
        assert {name for name, _ in schema[response]} <= read | linked, response
