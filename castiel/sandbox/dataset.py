"""Seeded records of any size in key order, with edits, creations and deletions laid over them.

A provider stand-in lists records ordered by a key (a time with an id, a change sequence, a Slack ``ts``). The
seeded ones are never stored: record ``i`` is made from ``i`` on demand, and its key grows with ``i``, so finding
where a listing starts is a binary search and listing 50,000 records holds one page in memory at a time. What changed
since seeding — edited, created or deleted records — lives in an overlay (``id → item``) kept sorted by key; a
listing merges the two and skips seeded records the overlay replaced.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

Key = tuple[Any, ...]


@dataclass(slots=True)
class Item:
    """One record: its id, its key in the listing order, its body, and whether it is deleted."""

    id: str
    key: Key
    body: dict[str, Any]
    deleted: bool = False


class Dataset:
    """``count`` seeded records (``make(i)``, ``key_of(i)`` strictly increasing) and an overlay of changes.

    ``index_of(id)`` maps a seeded record's id back to ``i`` (None for an id that was never seeded).
    """

    def __init__(
        self,
        count: int,
        make: Callable[[int], Item],
        key_of: Callable[[int], Key],
        index_of: Callable[[str], int | None],
    ) -> None:
        self.count = count
        self._make = make
        self._key_of = key_of
        self._index_of = index_of
        self._overlay: dict[str, Item] = {}
        self._ordered: list[tuple[Key, str]] = []
        self._replaced: set[int] = set()
        self.on_put: Callable[[Item, bool], None] | None = None
        """Told of every ``put``: the item stored and whether the record existed before (the sandbox's webhooks)."""

    def __len__(self) -> int:
        """Records not deleted."""
        live = self.count - len(self._replaced)
        return live + sum(1 for item in self._overlay.values() if not item.deleted)

    def get(self, item_id: str) -> Item | None:
        """The record as it stands (deleted ones included), None when it never existed."""
        found = self._overlay.get(item_id)
        if found is not None:
            return found
        index = self._index_of(item_id)
        if index is None or not 0 <= index < self.count:
            return None
        return self._make(index)

    def put(self, item: Item) -> None:
        """Store ``item`` as the record's new state (an edit, a creation or a deletion)."""
        existed = self.on_put is not None and self.get(item.id) is not None
        previous = self._overlay.get(item.id)
        if previous is not None:
            self._ordered.remove((previous.key, item.id))
        else:
            index = self._index_of(item.id)
            if index is not None and 0 <= index < self.count:
                self._replaced.add(index)
        self._overlay[item.id] = item
        bisect.insort(self._ordered, (item.key, item.id))
        if self.on_put is not None:
            self.on_put(item, existed)

    def after(self, key: Key | None, *, deleted: bool = False) -> Iterator[Item]:
        """Records with a key above ``key`` (all when None), ascending; deleted ones only when asked."""
        start = 0 if key is None else bisect.bisect_right(range(self.count), key, key=self._key_of)
        seeded = (self._make(i) for i in range(start, self.count) if i not in self._replaced)
        first = 0 if key is None else bisect.bisect_right(self._ordered, (key, "\U0010ffff"))
        changed = (self._overlay[item_id] for _, item_id in islice(self._ordered, first, None))
        merged = heapq.merge(seeded, changed, key=lambda item: item.key)
        return (item for item in merged if deleted or not item.deleted)

    def before(self, key: Key | None, *, deleted: bool = False) -> Iterator[Item]:
        """Records with a key below ``key`` (all when None), descending; deleted ones only when asked."""
        end = self.count if key is None else bisect.bisect_left(range(self.count), key, key=self._key_of)
        seeded = (self._make(i) for i in range(end - 1, -1, -1) if i not in self._replaced)
        last = len(self._ordered) if key is None else bisect.bisect_left(self._ordered, (key, ""))
        changed = (self._overlay[self._ordered[i][1]] for i in range(last - 1, -1, -1))
        merged = heapq.merge(seeded, changed, key=lambda item: item.key, reverse=True)
        return (item for item in merged if deleted or not item.deleted)

    def count_after(self, key: Key | None, *, deleted: bool = False) -> int:
        """How many records ``after(key, deleted=…)`` lists, without making them."""
        start = 0 if key is None else bisect.bisect_right(range(self.count), key, key=self._key_of)
        seeded = self.count - start - sum(1 for index in self._replaced if index >= start)
        first = 0 if key is None else bisect.bisect_right(self._ordered, (key, "\U0010ffff"))
        changed = sum(1 for _, item_id in self._ordered[first:] if deleted or not self._overlay[item_id].deleted)
        return seeded + changed
