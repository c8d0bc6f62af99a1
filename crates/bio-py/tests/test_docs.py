"""What ``help()`` shows at run time, against the type stubs editors read.

The docstrings live once in the Rust source (``crates/bio-py/src/lib.rs``, PyO3 doc comments): they
are what ``help(biorule.Trainer)`` and ``biorule.fewshot.__doc__`` show. ``__init__.pyi`` repeats
them for editors, which do not import the compiled module; these tests fail when the two drift
apart (text, parameter names or defaults), or when a public callable has no docstring at run time.
"""

import ast
import inspect
import pathlib
import pydoc
import re

import pytest

import biorule

STUB = pathlib.Path(biorule.__file__).with_name("__init__.pyi")


def words(doc):
    """A docstring's text with its line breaks and indentation ignored."""
    return " ".join(inspect.cleandoc(doc or "").split())


def stub_definitions():
    """``{"name" or "Class.member": ast node}`` of every documented public definition in the stub."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            found[node.name] = node
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.name.startswith("_"):
                    found[f"{node.name}.{member.name}"] = member
    return found


STUBS = stub_definitions()


def runtime(name):
    value = biorule
    for part in name.split("."):
        value = inspect.getattr_static(value, part) if isinstance(value, type) else getattr(value, part)
    return value


def test_the_stub_covers_every_public_callable():
    public = {n for n in biorule.__all__ if callable(getattr(biorule, n)) and n != "datasets"}
    assert public <= set(STUBS), sorted(public - set(STUBS))


@pytest.mark.parametrize("name", sorted(STUBS))
def test_runtime_docstrings_say_what_the_stub_says(name):
    stub_doc = ast.get_docstring(STUBS[name])
    doc = runtime(name).__doc__
    assert words(doc), f"{name} has no docstring at run time"
    if stub_doc is not None:
        assert words(doc) == words(stub_doc), f"{name}: runtime and stub docstrings differ"


def stub_parameters(node):
    """``[(name, kind, default)]`` of a stub function, without ``self``; ``default`` is the literal
    value, ``inspect.Parameter.empty`` when there is none."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults
    ]
    params = [(a.arg, "positional", d) for a, d in zip(positional, defaults)]
    if args.vararg:
        params.append((args.vararg.arg, "*", inspect.Parameter.empty))
    params += [
        (a.arg, "keyword", inspect.Parameter.empty if d is None else ast.literal_eval(d))
        for a, d in zip(args.kwonlyargs, args.kw_defaults)
    ]
    if args.kwarg:
        params.append((args.kwarg.arg, "**", inspect.Parameter.empty))
    return [p for p in params if p[0] != "self"]


def runtime_parameters(callable_):
    kinds = {
        inspect.Parameter.VAR_POSITIONAL: "*",
        inspect.Parameter.VAR_KEYWORD: "**",
        inspect.Parameter.KEYWORD_ONLY: "keyword",
    }
    return [
        (p.name, kinds.get(p.kind, "positional"), p.default)
        for p in inspect.signature(callable_).parameters.values()
        if p.name != "self"
    ]


SIGNED = sorted(
    name
    for name, node in STUBS.items()
    if isinstance(node, ast.FunctionDef)
    and not any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)
)


@pytest.mark.parametrize("name", SIGNED + ["Trainer"])
def test_runtime_signatures_match_the_stub(name):
    if name == "Trainer":
        stub = stub_parameters(next(m for m in STUBS["Trainer"].body if getattr(m, "name", "") == "__init__"))
        shown = runtime_parameters(biorule.Trainer)
    else:
        stub = stub_parameters(STUBS[name])
        shown = runtime_parameters(runtime(name))
    assert shown == stub, f"{name}: runtime {shown} vs stub {stub}"
    assert "Ellipsis" not in str([p[2] for p in shown])


@pytest.mark.parametrize("name", ["Trainer", "Model", "DivergedError"])
def test_help_shows_the_classes_and_their_methods(name):
    text = pydoc.render_doc(getattr(biorule, name), renderer=pydoc.plaintext)
    assert words(getattr(biorule, name).__doc__)[:40] in " ".join(text.split())
    assert f"class {name}" in text and "biorule._biorule" not in text, text[:300]
    if name == "Trainer":
        assert "Trains a new network and returns it" in text and "rule='bio'" in text, text
    if name == "Model":
        assert "Predicted class of each image" in text and re.search(r"predict\(self, (/, )?x\)", text), text


def test_the_exception_is_shown_as_biorule_diverged_error():
    assert biorule.DivergedError.__module__ == "biorule"
    assert biorule.DivergedError.__qualname__ == "DivergedError"
    assert issubclass(biorule.DivergedError, RuntimeError)
