"""KnnQuery: the one type for k-NN query options (k, voting, search effort, top_n), on both ends of the wire.

A query is validated when it is made, wherever a request enters (the CLI, a gRPC request, the
Python API): every value is checked on its own here, and the checks that need the model (k at most
the number of indexed vectors, nprobe at most nlist, which knobs the index has) run once when the
server resolves it against a model (``knnserve.query``). Unset fields (None) mean "the model's
default". The same type is a bundle's stored defaults and the "effective parameters" a response
reports, so one spelling of each option exists from the command line to FAISS.

No grpc, protobuf or numpy here: the server's numpy core imports this module.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any

from knnserve_client.wire.errors import InvalidInputError

WEIGHTS: tuple[str, ...] = ("uniform", "distance")
TIE_BREAKS: tuple[str, ...] = ("nearest", "lowest")
HEADS: tuple[str, ...] = ("knn", "linear")
# The wire carries these options as uint32.
MAX_OPTION_VALUE = 2**32 - 1
# Rows per response get this many best classes when top_n is unset (at most the number of classes).
DEFAULT_TOP_N = 5
_MINIMUM = {"k": 1, "nprobe": 1, "ef_search": 1, "top_n": 0}
_CHOICES = {"weights": WEIGHTS, "tie_break": TIE_BREAKS}
# The options given by name (strings); every other option is an integer.
NAMED_OPTIONS: tuple[str, ...] = tuple(_CHOICES)


def _as_int(field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise InvalidInputError(field, f"an integer >= {minimum}", repr(value))
    try:
        number = operator.index(value)  # int, numpy integers; never a float or a string
    except TypeError:
        raise InvalidInputError(field, f"an integer >= {minimum}", repr(value)) from None
    if number < minimum:
        raise InvalidInputError(field, f"an integer >= {minimum}", number)
    if number > MAX_OPTION_VALUE:
        raise InvalidInputError(field, f"an integer of at most {MAX_OPTION_VALUE} (uint32 on the wire)", number)
    return number


def check_choice(field: str, value: object) -> None:
    """InvalidInputError unless ``value`` is one of the names ``field`` (weights, tie_break) allows."""
    choices = _CHOICES[field]
    if value not in choices:
        raise InvalidInputError(field, f"one of {', '.join(choices)}", repr(value))


@dataclass(frozen=True, slots=True)
class KnnQuery:
    """k-NN options of one request; None means "the model's default".

    Attributes
    ----------
    k : neighbours that vote (>= 1; the server also requires k <= the number of indexed vectors).
    weights : ``uniform`` (each neighbour votes 1) or ``distance`` (1 / distance).
    tie_break : ``nearest`` (the tied class of the nearest neighbour) or ``lowest`` (lowest class
        index, scikit-learn's rule).
    nprobe : IVF indexes only: inverted lists visited (1 <= nprobe <= nlist).
    ef_search : HNSW indexes only: search beam width (>= 1).
    top_n : best classes returned per row with their scores (0 <= top_n <= number of classes;
        unset: min(5, number of classes)).
    """

    k: int | None = None
    weights: str | None = None
    tie_break: str | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    top_n: int | None = None

    # Read by pydantic when a bundle manifest stores a KnnQuery as its defaults: unknown keys are errors.
    __pydantic_config__ = {"extra": "forbid"}  # noqa: RUF012

    def __post_init__(self) -> None:
        for field, minimum in _MINIMUM.items():
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, _as_int(field, value, minimum))
        for field in _CHOICES:
            value = getattr(self, field)
            if value is not None:
                check_choice(field, value)

    def or_defaults(self, defaults: KnnQuery) -> KnnQuery:
        """This query with every unset field taken from ``defaults``."""
        return KnnQuery(**{name: value if value is not None else getattr(defaults, name) for name, value in self.items()})

    def replace(self, **changes: Any) -> KnnQuery:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def items(self) -> list[tuple[str, Any]]:
        """(field, value) pairs in declaration order, unset ones included."""
        return [(name, getattr(self, name)) for name in _FIELD_NAMES]

    def set_fields(self) -> dict[str, Any]:
        """The fields that are set, as a plain dict."""
        return {name: value for name, value in self.items() if value is not None}


_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(KnnQuery))


def query_fields() -> tuple[str, ...]:
    """Names of the KnnQuery fields, in order (the proto messages that carry a query must have each)."""
    return _FIELD_NAMES


__all__ = ["DEFAULT_TOP_N", "HEADS", "MAX_OPTION_VALUE", "TIE_BREAKS", "WEIGHTS", "NAMED_OPTIONS", "KnnQuery", "check_choice", "query_fields"]
