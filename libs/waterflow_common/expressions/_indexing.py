"""Property access, indexing and ``*`` filters, with GitHub's rules (actions/runner's ``Index``).

``a.b`` and ``a['b']`` are the same operation. Object keys ignore case; an array index is any value
that converts to a non-negative number (``'1'``, ``1.9`` and ``true`` all work, floored); anything
missing or not indexable is null, never an error. A ``*`` filter turns an object's values or an
array's items into a :class:`FilteredArray`, to whose elements every later access applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._values import Kind, convert_to_string, fold_case, is_primitive, kind_of, to_number


class FilteredArray(list[Any]):
    """The array made by a ``*`` filter.

    GitHub applies a further ``.name`` or ``[index]`` to *each element* of a filtered array (dropping
    the elements it does not apply to), which is what makes ``steps.*.outcome`` work; an ordinary
    array is indexed as a whole. The subclass keeps the two apart.
    """

    __slots__ = ()


_ABSENT = object()


def lookup_property(obj: Mapping[Any, Any], name: str) -> tuple[bool, Any]:
    """``(found, value)`` for a case-insensitive key; an exact match wins."""
    value = obj.get(name, _ABSENT)
    if value is not _ABSENT:
        return True, value
    folded = fold_case(name)
    for key, candidate in obj.items():
        if isinstance(key, str) and fold_case(key) == folded:
            return True, candidate
    return False, None


def _string_index(key: Any) -> str | None:
    return convert_to_string(key) if is_primitive(key) else None


def _integer_index(key: Any) -> int | None:
    number = to_number(key)
    if math.isnan(number) or number < 0 or number >= 2**31:
        return None
    return math.floor(number)


def _index_one(container: Any, string_key: str | None, integer_key: int | None) -> tuple[bool, Any]:
    kind = kind_of(container)
    if kind is Kind.OBJECT and string_key is not None:
        return lookup_property(container, string_key)
    if kind is Kind.ARRAY and integer_key is not None and integer_key < len(container):
        return True, container[integer_key]
    return False, None


def index(container: Any, key: Any) -> Any:
    """``container[key]`` and ``container.key``: null when absent or not indexable; applied to
    every element of a filtered array."""
    string_key, integer_key = _string_index(key), _integer_index(key)
    if isinstance(container, FilteredArray):
        result = FilteredArray()
        for item in container:
            found, value = _index_one(item, string_key, integer_key)
            if found:
                result.append(value)
        return result
    return _index_one(container, string_key, integer_key)[1]


def _children(container: Any) -> Sequence[Any]:
    kind = kind_of(container)
    if kind is Kind.OBJECT:
        return list(container.values())
    if kind is Kind.ARRAY:
        return list(container)
    return ()


def wildcard(container: Any) -> FilteredArray:
    """``container.*`` / ``container[*]``: the values of an object or items of an array, flattened
    one level further for a filtered array; empty for anything else."""
    if isinstance(container, FilteredArray):
        return FilteredArray(child for item in container for child in _children(item))
    return FilteredArray(_children(container))


