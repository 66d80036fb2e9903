"""The knnserve.v1 enums as names: ``WEIGHTING_DISTANCE`` <-> ``"distance"``, derived from the generated descriptors.

Each table is made from its enum by dropping the prefix and lower-casing, so a value added to the
proto appears here without a hand-kept copy; a test checks the names are the plain ones
(``wire.query.WEIGHTS``, ``TIE_BREAKS``, ``HEADS``). Each table is named after its proto enum
(``WEIGHTING`` for ``Weighting``), the plain tuple of names after the option (``WEIGHTS``).
"""

from __future__ import annotations

from typing import Any

from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import tensor_pb2


class WireEnum:
    """One proto enum seen as lower-case names (value 0, ``*_UNSPECIFIED``, is "unset").

    Parameters
    ----------
    enum : the generated enum wrapper, e.g. ``knnserve_pb2.Weighting``.
    prefix : the prefix its value names share, e.g. ``"WEIGHTING_"``.
    field : the request field it travels in, named in error messages.
    """

    def __init__(self, enum: Any, prefix: str, field: str) -> None:
        self.enum = enum
        self.field = field
        self.numbers: dict[str, int] = {
            name.removeprefix(prefix).lower(): number for name, number in enum.items() if number != 0
        }
        self.names: dict[int, str] = {number: name for name, number in self.numbers.items()}

    def to_wire(self, name: str | None) -> int | None:
        """The enum number of a name (None stays None, meaning "unset")."""
        if name is None:
            return None
        number = self.numbers.get(name)
        if number is None:
            raise InvalidInputError(self.field, f"one of {', '.join(self.numbers)}", repr(name))
        return number

    def from_wire(self, number: int | None) -> str | None:
        """The name of an enum number; 0 (``*_UNSPECIFIED``) and None are "unset" (None)."""
        if not number:
            return None
        name = self.names.get(number)
        if name is None:
            expected = ", ".join(self.enum.Name(n) for n in self.names)
            raise InvalidInputError(self.field, f"one of {expected}", number)
        return name


WEIGHTING = WireEnum(pb.Weighting, "WEIGHTING_", "weights")
TIE_BREAK = WireEnum(pb.TieBreak, "TIE_BREAK_", "tie_break")
HEAD = WireEnum(pb.Head, "HEAD_", "heads")
DTYPE = WireEnum(tensor_pb2.DType, "DTYPE_", "dtype")

__all__ = ["DTYPE", "HEAD", "TIE_BREAK", "WEIGHTING", "WireEnum"]
