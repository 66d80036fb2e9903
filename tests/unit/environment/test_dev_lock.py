"""The test environment is the lock: what `make test` installs is what requirements/dev.lock pins."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path


ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import lock_deps
finally:
    sys.path.pop(0)


def test_make_test_installs_every_package_through_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^DEV_LOCK := requirements/dev\.lock$", makefile, flags=re.MULTILINE)
    recipe = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    installs = [line for line in recipe.splitlines() if "pip install" in line]
    assert len(installs) == 2 and all("$(LOCK_ARGS)" in line for line in installs), installs
    assert "--no-build-isolation" in installs[1] and "-e ./client -e '.[dev]'" in installs[1]
    assert re.search(r"^LOCK_ARGS = \$\(if \$\(UNLOCKED\),,-c \$\(DEV_LOCK\)\)$", makefile, flags=re.MULTILINE)
    test_target = makefile.split("\ntest:", 1)[1].splitlines()[0]
    assert "$(STAMP)" in test_target


def test_this_environment_has_every_locked_version() -> None:
    pins = lock_deps.read_lock(lock_deps.DEV.path)
    assert {"grpcio", "grpcio-tools", "protobuf", "pytest", "torch", "pip", "setuptools", "pybind11"} <= set(pins)
    wrong = {}
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            wrong[name] = f"locked {version}, installed {installed}"
    assert not wrong, f"this environment is not requirements/dev.lock (rebuild it: rm -rf .venv && make test): {wrong}"


def test_the_dev_lock_covers_the_dev_extra_and_only_it() -> None:
    pins = lock_deps.read_lock(lock_deps.DEV.path)
    expected = lock_deps.expected_names(lock_deps.DEV)
    assert lock_deps.lock_problems(pins, expected) == []
    # what the lock must name: the dev extra's own packages and what they pull in (ray[data] -> pandas)
    assert {"hypothesis", "tritonclient", "ray", "pandas", "selenium"} <= set(pins)
    dropped = {name: version for name, version in pins.items() if name != "ray"}
    assert lock_deps.lock_problems(dropped, expected) == ["ray: needed but not locked"]


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    image, dev = lock_deps.read_lock(lock_deps.IMAGE.path), lock_deps.read_lock(lock_deps.DEV.path)
    assert set(image) <= set(dev)
    assert {name: dev[name] for name in image} == image
