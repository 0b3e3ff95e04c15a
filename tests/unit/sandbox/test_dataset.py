"""The sandbox's record store against a plain sorted list: listings after and before a key, with edits, creations and
deletions laid over the seeded records."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from castiel.sandbox.dataset import Dataset, Item, Key

SEEDED = 12


def seeded(i: int) -> Item:
    return Item(f"s{i:03d}", (2 * i, f"s{i:03d}"), {"n": i})


def index_of(item_id: str) -> int | None:
    return int(item_id[1:]) if item_id.startswith("s") else None


def make() -> Dataset:
    return Dataset(SEEDED, seeded, lambda i: (2 * i, f"s{i:03d}"), index_of)


changes = st.lists(
    st.tuples(
        st.sampled_from([f"s{i:03d}" for i in range(SEEDED)] + ["n001", "n002", "n003"]),
        st.integers(-2, 2 * SEEDED + 2),
        st.booleans(),
    ),
    max_size=15,
)
bounds = st.one_of(st.none(), st.integers(-2, 2 * SEEDED + 2))


def model(dataset_changes: list[tuple[str, int, bool]]) -> dict[str, tuple[Key, bool]]:
    state: dict[str, tuple[Key, bool]] = {seeded(i).id: (seeded(i).key, False) for i in range(SEEDED)}
    for item_id, position, deleted in dataset_changes:
        state[item_id] = ((position, item_id), deleted)
    return state


def apply(dataset_changes: list[tuple[str, int, bool]]) -> Dataset:
    dataset = make()
    for item_id, position, deleted in dataset_changes:
        dataset.put(Item(item_id, (position, item_id), {"changed": True}, deleted))
    return dataset


def key_bound(bound: int | None) -> Key | None:
    return None if bound is None else (bound, "m")


@settings(max_examples=200, deadline=None)
@given(dataset_changes=changes, bound=bounds, deleted=st.booleans())
def test_listings_match_a_sorted_list(dataset_changes: list[Any], bound: int | None, deleted: bool) -> None:
    dataset, state = apply(dataset_changes), model(dataset_changes)
    key = key_bound(bound)
    everything = sorted((item_key, item_id) for item_id, (item_key, gone) in state.items() if deleted or not gone)
    after = [item_id for item_key, item_id in everything if key is None or item_key > key]
    before = [item_id for item_key, item_id in reversed(everything) if key is None or item_key < key]
    assert [item.id for item in dataset.after(key, deleted=deleted)] == after
    assert [item.id for item in dataset.before(key, deleted=deleted)] == before
    assert dataset.count_after(key, deleted=deleted) == len(after)


@given(dataset_changes=changes)
def test_length_counts_the_records_not_deleted(dataset_changes: list[Any]) -> None:
    assert len(apply(dataset_changes)) == sum(1 for _, gone in model(dataset_changes).values() if not gone)


def test_get_sees_the_latest_state_and_nothing_that_never_existed() -> None:
    dataset = make()
    assert dataset.get("s003") == seeded(3)
    dataset.put(Item("s003", (100, "s003"), {"n": "edited"}, deleted=True))
    found = dataset.get("s003")
    assert found is not None
    assert (found.body, found.deleted) == ({"n": "edited"}, True)
    assert dataset.get("s999") is None
    assert dataset.get("zzz") is None


def test_an_edit_moves_a_seeded_record_to_its_new_key() -> None:
    dataset = make()
    dataset.put(Item("s000", (1000, "s000"), {"n": "edited"}))
    listed = [item.id for item in dataset.after(None)]
    assert listed[-1] == "s000"
    assert listed.count("s000") == 1
