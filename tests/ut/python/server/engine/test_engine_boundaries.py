"""The engine never imports the device protocol, and each of its modules says what it is in one line."""
import ast
import pathlib

import mindspore_federated.server.engine as engine

PROTOCOL = ("mindspore_federated.schema", "mindspore_federated.server.replies",
            "mindspore_federated.server.rounds", "mindspore_federated.server.hybrid_rounds",
            "mindspore_federated.server.round_table",
            "mindspore_federated.server.device_api", "mindspore_federated.server.http_fast",
            "mindspore_federated.server.http_app", "flatbuffers")


def _modules():
    return sorted(pathlib.Path(engine.__file__).parent.glob("*.py"))


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_no_engine_module_imports_the_device_protocol():
    offending = {}
    for path in _modules():
        names = [n for n in _imports(ast.parse(path.read_text())) if n.startswith(PROTOCOL)]
        if names:
            offending[path.name] = names
    assert offending == {}


def test_every_engine_module_has_a_one_line_docstring_and_stays_small():
    for path in _modules():
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text))
        assert doc and doc.splitlines()[0].strip(), path.name
        assert len(text.splitlines()) <= 500, path.name
