"""Documentation coverage of cellfeed's public Python API.

The public names are read at run time: every name in ``cellfeed.__all__``, the names of
the public submodules listed there (their own ``__all__``), the optional
``cellfeed.lightning``, and the public methods and properties each public class defines
itself. Each must have a numpydoc docstring:

- every callable's parameters listed under ``Parameters`` (a class documents its
  constructor's parameters, or a dataclass its fields, in the class docstring);
- a function or method annotated to return something has ``Returns`` (or ``Yields``);
- every top-level name of ``cellfeed.__all__`` that is a function or class has ``Examples``.

Used by the Sphinx build (docs/_ext/cellfeed_docs.py: each problem is a warning, and the
build runs with -W) and by tests/python/test_docs.py.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import types

# Imported only if it can be (it needs lightning): documented when present.
OPTIONAL_MODULES = ("cellfeed.lightning",)

_HEADER = re.compile(r"^\s*-{3,}\s*$")
_PARAM = re.compile(r"^(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?$")


def sections(doc: str) -> dict[str, list[str]]:
    """numpydoc sections of a docstring: {title: lines}, "" for the summary part."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: dict[str, list[str]] = {"": []}
    current = ""
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and _HEADER.match(lines[i + 1]) \
                and len(lines[i + 1].strip()) >= len(lines[i].strip()) - 1:
            current = lines[i].strip()
            out[current] = []
            i += 2
            continue
        out[current].append(lines[i])
        i += 1
    return out


def documented_parameters(doc: str) -> set[str]:
    """Names listed in the Parameters (and Other Parameters) sections."""
    names: set[str] = set()
    for title in ("Parameters", "Other Parameters"):
        for line in sections(doc).get(title, []):
            if not line or line[0].isspace():
                continue  # a description line
            m = _PARAM.match(line.strip())
            if m:
                names.update(n.strip().lstrip("*") for n in m.group(1).split(","))
    return names


def own_doc(obj) -> str:
    """The object's own docstring (not a base class's, not a dataclass's generated one)."""
    doc = obj.__doc__ if not isinstance(obj, property) else (obj.fget.__doc__ if obj.fget else None)
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj) and doc and \
            doc.startswith(obj.__name__ + "("):
        return ""  # dataclasses make "Name(field: type, ...)" when a class has no docstring
    return doc or ""


def _parameters(obj, is_method: bool) -> list[str]:
    target = obj
    if inspect.isclass(obj):
        target = obj.__init__
        is_method = True
        if target is object.__init__:
            return []
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    # Leading underscores mark internal fields and arguments (not part of the API).
    names = [p.name for p in sig.parameters.values() if not p.name.startswith("_")]
    if is_method and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _returns_something(func) -> bool:
    try:
        ann = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return False
    return ann is not inspect.Signature.empty and ann not in (None, "None")


def problems(qualname: str, obj, *, is_method: bool = False, needs_example: bool = False) -> list[str]:
    """What the docstring of one public object lacks (empty: nothing)."""
    doc = own_doc(obj)
    if not doc.strip():
        return [f"{qualname}: no docstring"]
    if isinstance(obj, (types.ModuleType, property)):
        return []
    out = []
    found = sections(doc)
    missing = [p for p in _parameters(obj, is_method) if p not in documented_parameters(doc)]
    if missing:
        out.append(f"{qualname}: parameters not documented under 'Parameters': {', '.join(missing)}")
    if not inspect.isclass(obj) and _returns_something(obj) and "Returns" not in found \
            and "Yields" not in found:
        out.append(f"{qualname}: returns a value but has no 'Returns' section")
    if needs_example and "Examples" not in found:
        out.append(f"{qualname}: no 'Examples' section")
    return out


def _class_members(cls):
    """Public methods and properties the class defines itself."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for name, member in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        if isinstance(member, property):
            yield name, member, False
        elif isinstance(member, (classmethod, staticmethod)):
            yield name, member.__func__, isinstance(member, classmethod)
        elif inspect.isfunction(member):
            yield name, member, True


def _module_names(mod, package: str) -> list[str]:
    """A module's public names: its __all__, else the functions and classes it defines."""
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    return [n for n, o in vars(mod).items() if not n.startswith("_")
            and (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == mod.__name__]


def public_objects(package: str = "cellfeed"):
    """(qualified name, object, is_method, needs_example) for every public object.

    A name re-exported by several public modules is listed once: under the top-level
    package if it is there, else under the module that defines it."""
    root = importlib.import_module(package)
    modules = [root]
    for name in _module_names(root, package):
        obj = getattr(root, name)
        if isinstance(obj, types.ModuleType) and obj.__name__.startswith(package + "."):
            modules.append(obj)
    for name in OPTIONAL_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    seen: set[int] = set()
    out = []
    for defined_here in (True, False):
        for mod in modules:
            if defined_here:
                out.append((mod.__name__, mod, False, False))
            for name in _module_names(mod, package):
                obj = getattr(mod, name)
                if isinstance(obj, (str, int, float, tuple, types.ModuleType)) or id(obj) in seen:
                    continue  # __version__, constants, submodules (listed above), repeats
                if defined_here and mod is not root and getattr(obj, "__module__", None) != mod.__name__:
                    continue  # a re-export: listed where it is defined, if that is public
                seen.add(id(obj))
                qual = f"{mod.__name__}.{name}"
                out.append((qual, obj, False, mod is root))
                if inspect.isclass(obj):
                    for mname, member, is_method in _class_members(obj):
                        out.append((f"{qual}.{mname}", member, is_method, False))
    return out


def check(package: str = "cellfeed") -> list[str]:
    """Every documentation problem of the package's public API (empty: none)."""
    found = []
    for qual, obj, is_method, needs_example in public_objects(package):
        found += problems(qual, obj, is_method=is_method, needs_example=needs_example)
    return found


if __name__ == "__main__":  # python docs/_ext/doccheck.py: list the problems
    import sys

    issues = check()
    print("\n".join(issues) or "every public name is documented")
    sys.exit(1 if issues else 0)
