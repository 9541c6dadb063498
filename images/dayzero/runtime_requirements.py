"""Print the runtime part of requirements.lock, each entry verbatim (pins and hashes).

Why: the lock holds the dev tools too (mypy, pytest, ...), which have no place in the image, and a
second lock would drift. The lock's `# via` notes give the dependency graph; an entry is kept when
pyproject.toml's [project].dependencies names it, or when a kept entry pulls it in. Standard
library only: it runs in the image's build stage as well as in the tests.

    python images/dayzero/runtime_requirements.py requirements.lock pyproject.toml > runtime.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
_ROOT = "dayzero (pyproject.toml)"


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(lock_text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (the entry's lines verbatim, without its notes; the names it is pulled in by)."""
    out: dict[str, tuple[str, list[str]]] = {}
    name: str | None = None
    lines: list[str] = []
    via: list[str] = []

    def close() -> None:
        if name is not None:
            out[name] = ("\n".join(lines) + "\n", via)

    for line in lock_text.splitlines():
        pin = _PIN.match(line)
        if pin:
            close()
            name, lines, via = normalize(pin.group(1)), [line], []
        elif name is not None and line.lstrip().startswith("--hash="):
            lines.append(line)
        elif name is not None and line.lstrip().startswith("#"):
            note = line.lstrip()[1:].strip()
            note = note.removeprefix("via").strip()
            if note:
                via.append(note if note == _ROOT else normalize(note.split()[0]))
    close()
    return out


def runtime_entries(lock_text: str, pyproject_text: str) -> dict[str, str]:
    """The entries the installed package needs at run time, in the lock's order."""
    deps = tomllib.loads(pyproject_text)["project"]["dependencies"]
    direct = {normalize(m.group(0)) for d in deps if (m := _NAME.match(d.strip()))}
    graph = entries(lock_text)
    kept = {n for n in graph if n in direct and _ROOT in graph[n][1]}
    grew = True
    while grew:
        more = {n for n, (_, via) in graph.items() if n not in kept and kept.intersection(via)}
        kept |= more
        grew = bool(more)
    return {n: text for n, (text, _) in graph.items() if n in kept}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: runtime_requirements.py requirements.lock pyproject.toml\n")
        return 2
    lock, pyproject = (Path(a).read_text() for a in argv)
    sys.stdout.write("".join(runtime_entries(lock, pyproject).values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
