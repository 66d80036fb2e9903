"""Package attributes that load their module on first use (PEP 562).

A package lists where each public name lives; importing the package then loads none of those
modules, so a command that needs one light submodule (the CLI reading defaults, the ``--workers``
supervisor) does not pay for faiss, pydantic or numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, MutableMapping
from typing import Any


def lazy_exports(
    package: str, homes: dict[str, tuple[str, ...]], namespace: MutableMapping[str, Any]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``, whose names live in the submodules of ``homes``.

    ``homes`` maps a submodule's name to the names it exports; a name is imported from it when first
    read and then kept in ``namespace`` (the package's globals), so later reads cost nothing.
    """
    module_of = {name: module for module, names in homes.items() for name in names}
    exported = sorted(module_of)

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exported))

    return exported, __getattr__, __dir__


__all__ = ["lazy_exports"]
