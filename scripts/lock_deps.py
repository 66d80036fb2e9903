"""Write (or check) the two dependency locks, pinned to the versions installed in this environment.

    .venv/bin/python scripts/lock_deps.py           # rewrite both locks from .venv
    .venv/bin/python scripts/lock_deps.py --check   # exit 1 when a lock misses a dependency, names one no
                                                    # longer needed, or pins a version the requirements exclude

The locks:

* ``deploy/requirements.lock`` — the image: every run-time dependency of the server (and of the client it
  needs), extras not followed (the image runs ``knnserve serve`` only).
* ``requirements/dev.lock`` — the test environment ``make test`` builds: everything
  ``pip install -e ./client -e '.[dev]'`` installs, plus the installers and build tools themselves (pip;
  setuptools, wheel and pybind11, which build the editable distributions and the peers built from source
  without build isolation), so a release on the registry cannot change what CI runs.

To move the test environment forward (a new release wanted, or a dependency added to pyproject.toml):
``rm -rf .venv && make UNLOCKED=1 .venv/.installed-stamp`` resolves afresh from the registry, then this script
rewrites both locks from what was installed; commit them after ``make test`` passes.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
OWN = {"knnserve", "knnserve-client"}


@dataclass(frozen=True)
class Lock:
    """One lock file: where it lives, what it pins (roots with their extras) and the tools pinned beside them."""

    path: Path
    roots: tuple[tuple[str, frozenset[str]], ...]
    header: str
    tools: tuple[str, ...] = ()


IMAGE = Lock(
    ROOT / "deploy" / "requirements.lock",
    (("knnserve", frozenset()),),
    "# Runtime dependencies of the knnserve image, pinned (scripts/lock_deps.py; do not edit by hand).\n",
)
DEV = Lock(
    ROOT / "requirements" / "dev.lock",
    (("knnserve", frozenset({"dev"})), ("knnserve-client", frozenset())),
    "# The test environment `make test` installs (-e ./client -e '.[dev]'), pinned (scripts/lock_deps.py; do not edit by hand).\n",
    tools=("pip", "setuptools", "wheel", "pybind11"),
)
LOCKS = (IMAGE, DEV)
LOCK = IMAGE.path


def canonical(name: str) -> str:
    """The normalised project name (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_closure(roots: tuple[tuple[str, frozenset[str]], ...] = IMAGE.roots) -> dict[str, list[Requirement]]:
    """name -> the requirements on it, for every package ``roots`` need (with their extras), own packages excluded."""
    found: dict[str, list[Requirement]] = {}
    todo = list(roots)
    visited: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonical(name), extras)
        if key in visited:
            continue
        visited.add(key)
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            if canonical(requirement.name) not in OWN:
                found.setdefault(canonical(requirement.name), []).append(requirement)
            todo.append((requirement.name, frozenset(requirement.extras)))
    return dict(sorted(found.items()))


def expected_names(lock: Lock) -> dict[str, list[Requirement]]:
    """What ``lock`` must pin: the closure of its roots, and its tools (which carry no requirement)."""
    closure = requirements_closure(lock.roots)
    for tool in lock.tools:
        closure.setdefault(canonical(tool), [])
    return dict(sorted(closure.items()))


def installed_pins(lock: Lock = IMAGE) -> dict[str, str]:
    """name -> installed version for everything ``lock`` pins."""
    return {name: metadata.version(name) for name in expected_names(lock)}


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
    problems = [f"{name}: needed but not locked" for name in closure if name not in pins]
    problems += [f"{name}: locked but no longer needed" for name in pins if name not in closure]
    for name, requirements in closure.items():
        for requirement in requirements:
            if name in pins and not requirement.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{name}=={pins[name]}: excluded by the requirement {requirement}")
    return problems


def render(lock: Lock, pins: dict[str, str]) -> str:
    """The lock file's text."""
    return lock.header + "".join(f"{name}=={version}\n" for name, version in pins.items())


def main(argv: list[str] | None = None) -> int:
    """Rewrite both locks, or with --check report what is wrong with them and return 1."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the committed locks")
    options = parser.parse_args(argv)
    if options.check:
        problems = [
            f"{lock.path.relative_to(ROOT)}: {problem}"
            for lock in LOCKS
            for problem in lock_problems(read_lock(lock.path) if lock.path.is_file() else {}, expected_names(lock))
        ]
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("rewrite them: .venv/bin/python scripts/lock_deps.py", file=sys.stderr)
        return 1 if problems else 0
    for lock in LOCKS:
        lock.path.parent.mkdir(parents=True, exist_ok=True)
        lock.path.write_text(render(lock, installed_pins(lock)))
        print(lock.path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
