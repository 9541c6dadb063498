"""The architectures the pinned vLLM serves, read from its wheel, not typed by hand.

vLLM decides what it can load from the tables of ``vllm/model_executor/models/registry.py``
(``_TEXT_GENERATION_MODELS``, ``_MULTIMODAL_MODELS``, ...). This module parses that file with
``ast`` (importing vllm needs torch and a GPU) and writes ``data/vllm_architectures.json``, which
:mod:`dayzero.planner.support` reads. ``make archdata`` downloads the pinned wheel once into
``~/.cache/dayzero/wheels`` and writes the file; ``make archdata-check`` fails when the checked-in
file no longer matches the wheel, so a vLLM bump cannot leave a stale list behind.

Run as ``python -m dayzero.planner.archdata [--write | --check] [--expect-version V] [WHEEL]``;
without the wheel, ``--check --expect-version`` still catches a pin bumped without new data.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import operator
import re
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REGISTRY = "vllm/model_executor/models/registry.py"
DATA_FILE = Path(__file__).parent / "data" / "vllm_architectures.json"
# The union vLLM looks architectures up in; its members are the registry's tables.
ALL_TABLE = "_VLLM_MODELS"
PREVIOUS_TABLE = "_PREVIOUSLY_SUPPORTED_MODELS"
# Tables that name a category of their own; every other member of _VLLM_MODELS is "other"
# (pooling, classification, speculative-decoding drafts, the Transformers backend's classes).
CATEGORY_TABLES = {
    "text_generation": "_TEXT_GENERATION_MODELS",
    "multimodal": "_MULTIMODAL_MODELS",
    "transformers_backend": "_TRANSFORMERS_SUPPORTED_MODELS",
}
CATEGORIES = (*CATEGORY_TABLES, "other")
_TABLE_NAME = re.compile(r"^_[A-Z0-9_]+$")
# The comparisons a comprehension's filter may use.
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class ArchDataError(ValueError):
    """The registry changed shape: the parser must be taught the new construct."""


def architectures_from_registry_source(text: str) -> dict[str, Any]:
    """Architectures by category from the source of vLLM's ``registry.py`` (pure).

    Returns ``{"text_generation": [...], "multimodal": [...], "transformers_backend": [...],
    "other": [...], "previously_supported": {arch: last version}}``, lists sorted and disjoint
    (an architecture is listed under the first category that has it). Raises ArchDataError on a
    construct it does not understand, so that drift is loud rather than a silently short list.
    """
    tree = ast.parse(text)
    tables: dict[str, dict[str, Any]] = {}
    members: list[str] | None = None
    previous: dict[str, str] = {}
    for node in tree.body:
        target, value = _assignment(node)
        if target is None or value is None or not _TABLE_NAME.match(target):
            continue
        if not isinstance(value, ast.Dict):
            continue
        if target == PREVIOUS_TABLE:
            previous = _string_dict(value, target)
        elif target == ALL_TABLE:
            members = _splat_names(value, target)
        else:
            tables[target] = _table(value, target, tables)
    if members is None:
        raise ArchDataError(f"{ALL_TABLE} not found in the registry source")
    for name in (*members, CATEGORY_TABLES["text_generation"]):
        if name not in tables:
            raise ArchDataError(f"{ALL_TABLE} names {name}, which is not a dict literal")
    result: dict[str, Any] = {}
    seen: set[str] = set()
    for category, table in CATEGORY_TABLES.items():
        archs = sorted(set(tables.get(table, {})) - seen)
        seen.update(archs)
        result[category] = archs
    result["other"] = sorted({a for name in members for a in tables[name]} - seen)
    result["previously_supported"] = dict(sorted(previous.items()))
    return result


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return (target.id if isinstance(target, ast.Name) else None), node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _where(node: ast.AST, table: str) -> str:
    return f"{table}, line {getattr(node, 'lineno', '?')}"


def _table(node: ast.Dict, table: str, known: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """A registry table: {architecture: (module, class)}, with ``**`` spreads resolved."""
    out: dict[str, Any] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:
            out.update(_spread(value, table, known))
        elif isinstance(key, ast.Constant) and isinstance(key.value, str):
            out[key.value] = _literal(value)
        else:
            raise ArchDataError(f"{_where(key, table)}: a key that is not a string literal")
    return out


def _spread(node: ast.expr, table: str, known: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise ArchDataError(f"{_where(node, table)}: spreads {node.id}, defined later or not")
        return dict(known[node.id])
    if isinstance(node, ast.Dict):
        return _table(node, table, known)
    if isinstance(node, ast.DictComp):
        return _comprehension(node, table, known)
    raise ArchDataError(f"{_where(node, table)}: spreads a {type(node).__name__}")


def _comprehension(
    node: ast.DictComp, table: str, known: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """``{k: v for k, (mod, arch) in T.items() if arch == "X"}``: filters over one table."""
    if len(node.generators) != 1 or node.generators[0].is_async:
        raise ArchDataError(f"{_where(node, table)}: a comprehension over several iterables")
    gen = node.generators[0]
    it = gen.iter
    if not (
        isinstance(it, ast.Call)
        and not it.args
        and not it.keywords
        and isinstance(it.func, ast.Attribute)
        and it.func.attr == "items"
        and isinstance(it.func.value, ast.Name)
        and it.func.value.id in known
    ):
        raise ArchDataError(f"{_where(node, table)}: a comprehension not over TABLE.items()")
    if not isinstance(node.key, ast.Name):
        raise ArchDataError(f"{_where(node, table)}: a comprehension key that is not a name")
    source = known[it.func.value.id]
    out: dict[str, Any] = {}
    for arch, entry in source.items():
        env: dict[str, Any] = {}
        _bind(gen.target, (arch, entry), env, table)
        if all(_test(cond, env, table) for cond in gen.ifs):
            out[env[node.key.id]] = entry
    return out


def _bind(target: ast.expr, value: Any, env: dict[str, Any], table: str) -> None:  # noqa: ANN401 - registry values are whatever literal_eval made
    if isinstance(target, ast.Name):
        env[target.id] = value
        return
    if isinstance(target, ast.Tuple) and isinstance(value, tuple):
        if len(target.elts) != len(value):
            raise ArchDataError(
                f"{_where(target, table)}: unpacks {len(value)} into a different count"
            )
        for element, item in zip(target.elts, value, strict=True):
            _bind(element, item, env, table)
        return
    raise ArchDataError(f"{_where(target, table)}: an unpacking the parser does not know")


def _test(node: ast.expr, env: Mapping[str, Any], table: str) -> bool:
    if isinstance(node, ast.BoolOp):
        results = [_test(v, env, table) for v in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _test(node.operand, env, table)
    if isinstance(node, ast.Name | ast.Constant):
        return bool(_value(node, env, table))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        left = _value(node.left, env, table)
        right = _value(node.comparators[0], env, table)
        return bool(_COMPARE[type(node.ops[0])](left, right))
    raise ArchDataError(f"{_where(node, table)}: a filter the parser does not know")


def _value(node: ast.expr, env: Mapping[str, Any], table: str) -> Any:  # noqa: ANN401 - a literal_eval result
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ArchDataError(f"{_where(node, table)}: a value the parser does not know") from None


def _literal(node: ast.expr) -> Any:  # noqa: ANN401 - a literal_eval result
    # Entries are ("module", "Class") tuples; anything richer is kept as None (only keys count).
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _string_dict(node: ast.Dict, table: str) -> dict[str, str]:
    value = _literal(node)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ArchDataError(f"{table}: expected a dict of string literals")
    return value


def _splat_names(node: ast.Dict, table: str) -> list[str]:
    names = []
    for key, value in zip(node.keys, node.values, strict=True):
        if key is not None or not isinstance(value, ast.Name):
            raise ArchDataError(f"{_where(value, table)}: expected only **TABLE entries")
        names.append(value.id)
    return names


def archdata_from_wheel(wheel: str | Path) -> dict[str, Any]:
    """The data file's content, from a vllm wheel: version, provenance, architectures."""
    wheel = Path(wheel)
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(
            (n for n in zf.namelist() if re.fullmatch(r"vllm-[^/]+\.dist-info/METADATA", n)),
            None,
        )
        if metadata is None:
            raise ArchDataError(f"{wheel.name}: no vllm-*.dist-info/METADATA; not a vllm wheel")
        version = re.search(r"^Version: *(\S+)", zf.read(metadata).decode(), re.MULTILINE)
        if version is None:
            raise ArchDataError(f"{wheel.name}: METADATA names no Version")
        try:
            source = zf.read(REGISTRY).decode()
        except KeyError:
            raise ArchDataError(f"{wheel.name}: no {REGISTRY}; vLLM moved its registry") from None
    digest = hashlib.sha256()
    with wheel.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {
        "vllm": version[1],
        "source": REGISTRY,
        "wheel": wheel.name,
        "wheel_sha256": digest.hexdigest(),
        **architectures_from_registry_source(source),
    }


def render(data: Mapping[str, Any]) -> str:
    """The data file's text: stable key order, one architecture per line, for reviewable diffs."""
    return json.dumps(data, indent=2) + "\n"


def _drift(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in ("vllm", "source", "wheel", "wheel_sha256")
        if old.get(key) != new.get(key)
    ]
    for category in (*CATEGORIES, "previously_supported"):
        before, after = set(old.get(category, ())), set(new.get(category, ()))
        if added := sorted(after - before):
            lines.append(f"{category}: +{len(added)} {', '.join(added)}")
        if removed := sorted(before - after):
            lines.append(f"{category}: -{len(removed)} {', '.join(removed)}")
    return lines


def _check(data_file: Path, wheel: Path | None, expect_version: str | None) -> int:
    current = data_file.read_text() if data_file.is_file() else ""
    recorded = json.loads(current) if current else {}
    if expect_version and recorded.get("vllm") != expect_version:
        sys.stderr.write(
            f"drift: {data_file.name} is for vllm {recorded.get('vllm')}, the pin is "
            f"{expect_version}; run `make archdata` and commit the result\n"
        )
        return 1
    if wheel is None:
        sys.stdout.write(
            f"{data_file.name} is for vllm {recorded.get('vllm')} as pinned; the wheel is not "
            "cached, so the architectures were not re-derived (`make archdata` fetches it)\n"
        )
        return 0
    data = archdata_from_wheel(wheel)
    text = render(data)
    if current == text:
        counts = ", ".join(f"{len(data[c])} {c}" for c in CATEGORIES)
        sys.stdout.write(f"{data_file.name} matches vllm {data['vllm']} ({counts})\n")
        return 0
    for line in _drift(recorded, data) or ["formatting differs"]:
        sys.stderr.write(f"drift: {data_file.name}: {line}\n")
    sys.stderr.write("drift: run `make archdata` and commit the result\n")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dayzero.planner.archdata [--write | --check] [--expect-version V] [WHEEL]``."""
    parser = argparse.ArgumentParser(prog="python -m dayzero.planner.archdata", description=__doc__)
    parser.add_argument("wheel", type=Path, nargs="?", help="the pinned vllm wheel (.whl)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the data file")
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the data file drifted from the wheel (or from --expect-version)",
    )
    parser.add_argument("--expect-version", help="with --check: the pinned vLLM version")
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="the data file")
    args = parser.parse_args(argv)
    if args.check:
        if args.wheel is None and not args.expect_version:
            parser.error("--check needs a WHEEL, --expect-version, or both")
        return _check(args.data, args.wheel, args.expect_version)
    if args.wheel is None:
        parser.error("a WHEEL is needed to read the architectures from")
    data = archdata_from_wheel(args.wheel)
    text = render(data)
    if args.write:
        counts = ", ".join(f"{len(data[c])} {c}" for c in CATEGORIES)
        args.data.parent.mkdir(parents=True, exist_ok=True)
        args.data.write_text(text)
        sys.stdout.write(f"wrote {args.data} from vllm {data['vllm']} ({counts})\n")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
