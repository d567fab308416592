"""A read-only dict, for the mappings inside frozen results."""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

__all__ = ["ReadOnlyDict"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class ReadOnlyDict(dict[_K, _V]):
    """A dict that refuses every change (:class:`TypeError`), so that a frozen result is
    frozen through. Unlike :class:`types.MappingProxyType` it is still a dict: it pickles,
    deep-copies, goes through :func:`dataclasses.asdict` and :func:`json.dumps`."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type[ReadOnlyDict[_K, _V]], tuple[dict[_K, _V]]]:
        # Rebuilt from a plain copy: the default way fills the dict item by item.
        return (type(self), (dict(self),))
