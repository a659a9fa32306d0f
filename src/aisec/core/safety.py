"""Guards for the inputs aisec is handed: what a plan may import, how much a file may expand, YAML.

aisec is run by auditors on files other people give them (plans, policies, models, datasets), so
nothing named in those files may execute, and no small file may make aisec use unbounded memory or
time. This module holds the pieces every reader shares:

* :func:`resolve_class` turns ``package.module:Class`` from a plan into an ``nn.Module`` subclass,
  and nothing else. Only aisec's own modules and modules in the current folder are imported
  without opt-in; any other module must be allowed by the person running aisec, on the command
  line (``--allow-module mypkg``) or in Python (``allow_modules=["mypkg"]`` /
  :func:`allow_modules`), never by the file itself.
* :func:`load_yaml` is ``yaml.safe_load`` with caps on the file size, the nesting depth and the
  size the document has once its anchors and aliases are expanded (:data:`MAX_YAML_ITEMS`: an
  "alias bomb" of a few hundred bytes expands to billions of values when validated or printed).
* :func:`short_repr` is a bounded ``repr`` for error messages about untrusted values.
* The limits (:data:`MAX_CLASSES`, :data:`MAX_IMAGE_PIXELS`, ...) are documented where the user
  meets them and named in every error that enforces them.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import reprlib
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aisec.core.errors import ConfigError

#: Most classes a dataset may declare (a label of 10⁹ would otherwise build 10⁹ class names).
MAX_CLASSES = 100_000
#: Integer labels without a class list must be dense: the largest may be at most this many times
#: the number of labelled rows (or below :data:`SPARSE_LABELS_OK`), else a class list is required.
LABEL_DENSITY = 100
#: Integer labels below this are always accepted without a class list (e.g. ImageNet's 1,000).
SPARSE_LABELS_OK = 1_000
#: Pixels (width × height) an image may have (Pillow's own default is about 89 million).
MAX_IMAGE_PIXELS = 64_000_000
#: Plan and policy files larger than this are refused.
MAX_YAML_BYTES = 4 * 2**20
#: Values a plan or policy may hold once its anchors and aliases (``*name``) are expanded.
MAX_YAML_ITEMS = 200_000
#: Nesting depth of a plan, policy or endpoint reply.
MAX_DEPTH = 64
#: Elements an unpickled CIFAR batch may expand to when its shared references are counted each time.
MAX_UNPICKLED_ITEMS = 2_000_000

_ALLOWED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("aisec_allowed_modules", default=())

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def short_repr(value: Any) -> str:
    """``repr`` cut to a few elements and levels: safe on huge or deeply shared structures."""
    try:
        return _REPR.repr(value)
    except Exception:  # a hostile __repr__
        return f"<{type(value).__name__}>"


# ------------------------------------------------------------------------------ imports


def allowed_modules() -> tuple[str, ...]:
    """The packages the caller allowed plans to import, beyond aisec's and the current folder's."""
    return _ALLOWED.get()


@contextmanager
def allow_modules(names: Iterable[str] | None) -> Iterator[None]:
    """Within the block, plans may also import ``names`` (packages; their submodules included).

    >>> with allow_modules(["mypkg"]):
    ...     run_plan(Plan.from_yaml("plan.yaml"))   # plan may name mypkg.nets:Net
    """
    extra = tuple(n.strip() for n in (names or ()) if n and n.strip())
    token = _ALLOWED.set(_ALLOWED.get() + extra)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def _system_dirs() -> list[Path]:
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    dirs.update(v for k, v in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib"))
    return [Path(d).resolve() for d in dirs if d]


def _find_spec(top: str) -> Any:
    """Where the top-level module ``top`` would be imported from (nothing runs): the import path first, then
    the current folder, which the ``aisec`` console script does not put on the path (``python -m aisec``
    does), so ``--arch mynets:Net`` finds ``./mynets.py`` either way."""
    from importlib.machinery import PathFinder

    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        spec = PathFinder.find_spec(top, [str(Path.cwd())])
    return spec


def _import(mod_name: str) -> Any:
    """Import ``mod_name``; a module found only in the current folder is imported from there."""
    top = mod_name.split(".", 1)[0]
    try:
        on_path = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        on_path = False
    if on_path:
        return importlib.import_module(mod_name)
    cwd = str(Path.cwd())
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(mod_name)
    finally:
        sys.path.remove(cwd)


def _local(top: str) -> bool:
    """True when the top-level module ``top`` is a file in the current folder (found without running it),
    and not part of the Python installation or its site-packages."""
    spec = _find_spec(top)
    if spec is None or not spec.origin or not spec.has_location:
        return False
    origin = Path(spec.origin).resolve()
    if not origin.is_relative_to(Path.cwd().resolve()):
        return False
    return not any(origin.is_relative_to(d) for d in _system_dirs())


def module_allowed(mod_name: str) -> bool:
    """May a plan import ``mod_name``? aisec's own modules, the current folder's, and the allowed ones."""
    top = mod_name.split(".", 1)[0]
    if top == "aisec":
        return True
    for allowed in allowed_modules():
        if mod_name == allowed or mod_name.startswith(allowed + "."):
            return True
    return _local(top)


def resolve_class(ref: str, *, what: str = "architecture", zoo: Iterable[str] = ()) -> type[Any]:
    """The ``nn.Module`` subclass that ``package.module:Class`` (or ``package.module.Class``) names.

    Nothing is called: the module is imported only when allowed (see :func:`module_allowed`), the
    attribute is looked up, and it must be a class deriving from ``torch.nn.Module``; a function
    such as ``os:system`` is refused before anything could call it.

    Raises:
        ConfigError: the reference is malformed, its module is not allowed or not importable, or it
            names something other than an ``nn.Module`` class.
    """
    from torch import nn

    ref = ref.strip()
    zoo_hint = f" or a zoo name ({', '.join(zoo)})" if zoo else ""
    mod_name, sep, attr = ref.partition(":")
    if not sep:
        mod_name, _, attr = ref.rpartition(".")
    if not mod_name or not attr or not all(p.isidentifier() for p in (*mod_name.split("."), *attr.split("."))):
        raise ConfigError(f"cannot read {what} '{ref}': expected package.module:Class{zoo_hint}")
    top = mod_name.split(".", 1)[0]
    if _find_spec(top) is None:  # finds, runs nothing
        raise ConfigError(
            f"{what} '{ref}' cannot be imported: there is no module '{top}' in this environment nor a {top}.py "
            f"in the current folder. Give package.module:Class importable here{zoo_hint}"
        )
    if not module_allowed(mod_name):
        raise ConfigError(
            f"{what} '{ref}' would import the module '{mod_name}', which is neither part of aisec nor in the "
            f"current folder; a plan may not import other code by itself. If you trust it, allow it when you "
            f"run aisec: --allow-module {top} (Python: allow_modules=['{top}'])"
        )
    try:
        obj: Any = _import(mod_name)
    except Exception as exc:
        raise ConfigError(
            f"{what} '{ref}' cannot be imported ({mod_name}): {type(exc).__name__}: {exc}. Give "
            f"package.module:Class importable in this environment{zoo_hint}"
        ) from exc
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"module '{mod_name}' has no attribute '{attr}' ({what} '{ref}')")
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ConfigError(
            f"{what} '{ref}' is a {type(obj).__name__}, not an nn.Module class; aisec only constructs "
            "torch.nn.Module subclasses named in a plan"
        )
    return obj


# ------------------------------------------------------------------------------ dataset paths

_OUTSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("aisec_outside_paths", default=False)


def outside_paths_allowed() -> bool:
    """Whether the caller allowed datasets to read files outside their folder (``--allow-outside-paths``)."""
    return _OUTSIDE.get()


@contextmanager
def allow_outside_paths(allowed: bool = True) -> Iterator[None]:
    """Within the block, files listed by a dataset may lie outside its folder (the CLI's ``--allow-outside-paths``)."""
    token = _OUTSIDE.set(bool(allowed))
    try:
        yield
    finally:
        _OUTSIDE.reset(token)


# ------------------------------------------------------------------------------ YAML


def _loader() -> type[Any]:
    import yaml

    class _NoAliasLoader(yaml.SafeLoader):
        """``SafeLoader`` that stops at :data:`MAX_DEPTH` levels of nesting."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth = getattr(self, "_depth", 0) + 1
            try:
                if self._depth > MAX_DEPTH:
                    raise yaml.composer.ComposerError(
                        None, None, f"nested deeper than {MAX_DEPTH} levels",
                        self.peek_event().start_mark)  # type: ignore[no-untyped-call]
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return _NoAliasLoader


def read_yaml_mapping(path: str | Path, *, what: str, holds: str) -> dict[str, Any]:
    """The mapping a YAML input file (plan, campaign, threat model) holds, read by :func:`load_yaml`; a one-line
    ConfigError when the file is missing or holds something else (``holds``: what the mapping should name)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    raw = load_yaml(p, what=what)
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {p} must hold a mapping with {holds}")
    return raw


def validation_lines(exc: Any, *, limit: int | None = None) -> list[str]:
    """Each error of a pydantic ``ValidationError`` as ``loc: message (got value)``: pydantic's "Value error, "
    prefix dropped, the given value bounded by :func:`short_repr` (a mapping's value is not repeated)."""
    lines = []
    for e in exc.errors(include_url=False)[:limit]:
        msg = str(e["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(x) for x in e["loc"])
        got = f" (got {short_repr(e['input'])})" if "input" in e and not isinstance(e["input"], dict) else ""
        line = f"{loc + ': ' if loc else ''}{msg}{got}"
        if line not in lines:
            lines.append(line)
    return lines


def load_yaml(path: Path, *, what: str) -> Any:
    """Parse the YAML file ``path`` safely (no objects; bounded size, depth and alias expansion).

    Raises:
        ConfigError: the file is missing, too big, not UTF-8 or not valid YAML for aisec.
    """
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(
                f"{what} {path} is {size} bytes; aisec reads {what}s of at most {MAX_YAML_BYTES} bytes (MAX_YAML_BYTES)"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    try:
        doc = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"cannot parse {what} {path}: not valid YAML for aisec: {detail[:400]}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{what} {path} is nested too deeply (at most {MAX_DEPTH} levels)") from exc
    if expanded_size(doc, MAX_YAML_ITEMS) > MAX_YAML_ITEMS:
        raise ConfigError(
            f"{what} {path} expands to more than {MAX_YAML_ITEMS} values once its anchors and aliases (*name) are "
            "expanded (MAX_YAML_ITEMS); write the values out, or split the file"
        )
    return doc


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON-like ``obj`` (dicts and lists) is nested at most ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        cur, d = stack.pop()
        if d > limit:
            return False
        if isinstance(cur, dict):
            stack.extend((v, d + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, d + 1) for v in cur)
    return True


def expanded_size(obj: Any, limit: int) -> int:
    """Elements in ``obj`` counting shared references each time they occur, stopping past ``limit``.

    A pickle can reference one list from many places; the pickle stays small but anything that walks
    the result (``np.asarray``, ``str``) expands it. Counting stops as soon as ``limit`` is passed, so
    this is cheap even on a bomb.
    """
    count = 0
    stack = [obj]
    while stack:
        cur = stack.pop()
        count += 1
        if count > limit:
            return count
        if isinstance(cur, dict):
            stack.extend(cur.keys())
            stack.extend(cur.values())
        elif isinstance(cur, (list, tuple, set, frozenset)):
            stack.extend(cur)
    return count
