"""Write deploy/requirements.lock: every runtime dependency of the server (and the client it needs),
pinned to the versions installed in this environment, so an image build resolves nothing new.

    .venv/bin/python scripts/lock_deps.py           # rewrite the lock from .venv
    .venv/bin/python scripts/lock_deps.py --check   # exit 1 when the lock misses a dependency, names one no
                                                    # longer needed, or pins a version the requirements exclude

Extras (dev, plots, ...) are not followed: the image runs `knnserve serve` only.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "deploy" / "requirements.lock"
OWN = {"knnserve", "knnserve-client"}
HEADER = "# Runtime dependencies of the knnserve image, pinned (scripts/lock_deps.py; do not edit by hand).\n"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_closure(root: str = "knnserve") -> dict[str, list[Requirement]]:
    """name -> the requirements on it, for every package ``root`` needs at run time (no extras), own packages excluded."""
    found: dict[str, list[Requirement]] = {}
    todo, visited = [root], set()
    while todo:
        name = todo.pop()
        if canonical(name) in visited:
            continue
        visited.add(canonical(name))
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            if canonical(requirement.name) not in OWN:
                found.setdefault(canonical(requirement.name), []).append(requirement)
            todo.append(requirement.name)
    return dict(sorted(found.items()))


def installed_pins(root: str = "knnserve") -> dict[str, str]:
    """name -> installed version for the run-time closure of ``root``."""
    return {name: metadata.version(name) for name in requirements_closure(root)}


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """The lock's pins, name -> version."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def lock_problems(pins: dict[str, str], closure: dict[str, list[Requirement]]) -> list[str]:
    """What is wrong with ``pins`` for ``closure``: missing or extra names, versions a requirement excludes."""
    problems = [f"{name}: needed at run time but not locked" for name in closure if name not in pins]
    problems += [f"{name}: locked but no longer needed" for name in pins if name not in closure]
    for name, requirements in closure.items():
        for requirement in requirements:
            if name in pins and not requirement.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{name}=={pins[name]}: excluded by the requirement {requirement}")
    return problems


def render(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in pins.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args(argv)
    if options.check:
        problems = lock_problems(read_lock() if LOCK.is_file() else {}, requirements_closure())
        for problem in problems:
            print(f"{LOCK.relative_to(ROOT)}: {problem}", file=sys.stderr)
        if problems:
            print("rewrite it: .venv/bin/python scripts/lock_deps.py", file=sys.stderr)
        return 1 if problems else 0
    LOCK.write_text(render(installed_pins()))
    print(LOCK.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
