"""Write requirements.lock: every package requirements-dev.txt pulls in, at the version this venv has.

`make lock` runs it after a change to requirements*.txt; `make venv` installs
with the lock as constraints, so every machine gets the same transitive
versions. Only what the requirement files reach is written, whatever else the
venv holds.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def top_level(path: Path) -> list[Requirement]:
    """The requirements of a pip requirements file, following `-r other.txt`."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found += top_level(path.parent / line[3:].strip())
        elif line:
            found.append(Requirement(line))
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(wanted: list[Requirement]) -> dict[str, str]:
    """name -> installed version of every requirement and, recursively, of what each requires."""
    pinned: dict[str, str] = {}
    todo = [(req, frozenset(req.extras)) for req in wanted]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extras = todo.pop()
        key = (canonical(req.name), extras)
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)
        pinned[dist.metadata["Name"]] = dist.version
        for line in dist.requires or []:
            sub = Requirement(line)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in environments):
                todo.append((sub, frozenset(sub.extras)))
    return pinned


def main() -> int:
    pinned = closure(top_level(ROOT / "requirements-dev.txt"))
    lines = [f"{name}=={version}" for name, version in sorted(pinned.items(), key=lambda item: canonical(item[0]))]
    header = ("# Every package requirements-dev.txt pulls in, pinned: `make venv` installs with these as\n"
              "# constraints. Written by `make lock` (scripts/lock.py) from the venv; do not edit by hand.\n")
    (ROOT / "requirements.lock").write_text(header + "\n".join(lines) + "\n")
    print(f"requirements.lock: {len(lines)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
