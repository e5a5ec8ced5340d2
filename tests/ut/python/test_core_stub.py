"""`_core.pyi` declares exactly what `_core` binds: the same names, and the same parameters (names, order,
defaults) wherever pybind11 exposes a signature."""
import ast
import inspect
from pathlib import Path

import pytest

from mindspore_federated import _core

STUB = Path(_core.__file__).with_name("_core.pyi")
if not STUB.exists():  # an installed wheel: the stub ships next to the module; in the tree it is here
    STUB = Path(__file__).resolve().parents[3] / "mindspore_federated" / "_core.pyi"
DUNDER_METHODS = ("__init__", "__enter__", "__exit__")


def _stub():
    """{name: node} of the stub's top level, and {class: {member: node}}."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    top, members = {}, {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top[node.name] = node
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
    return top, members


def _params(fn_node):
    """[(name, default value or None)], the stub's `self` included for methods."""
    args = fn_node.args
    plain = args.posonlyargs + args.args
    defaults = [None] * (len(plain) - len(args.defaults)) + list(args.defaults)
    out = [(a.arg, None if d is None else eval(compile(ast.Expression(d), "<stub>", "eval"), {}))  # noqa: S307
           for a, d in zip(plain, defaults)]
    if args.vararg:
        out.append(("*" + args.vararg.arg, None))
    out += [(a.arg, None if d is None else ast.literal_eval(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return out


def _bound_params(obj, name):
    """The same list from pybind11's signature line (`name(a: T, b: T = 1) -> R`) of the bound object."""
    first = (obj.__doc__ or "").splitlines()[0] if obj.__doc__ else ""
    if not first.startswith(name + "("):
        return None   # pybind11 did not expose a signature
    return _params(ast.parse(f"def {first}: ...").body[0])


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stub_has_exactly_the_bound_names():
    top, members = _stub()
    assert set(top) == _public(_core)
    for cls, declared in members.items():
        bound = getattr(_core, cls)
        if not isinstance(bound, type) or issubclass(bound, BaseException):
            continue
        expected = _public(bound) | {n for n in DUNDER_METHODS if n in vars(bound)}
        assert set(declared) == expected, cls


@pytest.mark.parametrize("name", sorted(_public(_core)))
def test_stub_signatures_match_the_bindings(name):
    top, members = _stub()
    bound = getattr(_core, name)
    if inspect.isclass(bound):
        for member, node in members.get(name, {}).items():
            attr = inspect.getattr_static(bound, member)
            if isinstance(attr, property):
                continue
            params = _bound_params(getattr(bound, member), member)
            if params is not None:
                assert _params(node) == params, f"{name}.{member}"
        return
    params = _bound_params(bound, name)
    assert params is not None, f"{name}: pybind11 exposed no signature"
    assert _params(top[name]) == params, name
