"""Named registries: models, agents, tokenizers and decoders register with a decorator.

    DECODERS = Registry("decoder")

    @DECODERS.register("pyav")
    class PyAVDecoder: ...

    DECODERS.get("pyav")  # -> PyAVDecoder

A config or a command-line flag names an entry; `reverie list` prints every registry. Entries
whose module is heavy are declared `lazy`: name -> module, imported the first time it is asked for.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

_ALL: dict[str, "Registry"] = {}


class Registry(Generic[T]):
    """A name -> object table for one kind of component."""

    def __init__(self, kind: str, lazy: dict[str, str] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._lazy = dict(lazy or {})  # name -> module that registers it on import
        _ALL[kind] = self

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._entries and name in self._lazy:
            importlib.import_module(self._lazy[name])
        if name not in self._entries:
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._lazy))

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def all_registries() -> dict[str, Registry]:
    return dict(_ALL)
