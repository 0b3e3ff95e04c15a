"""The GitHub adapter against the sandbox while issues are edited through ``/_sandbox`` mid-fetch: the stand-in pages
by position as GitHub does, so every edit shifts the issues after it, and still every issue's current version is
pulled, and no version twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import httpx

from adapters.records import Page, Record
from castiel.sandbox.github import GitHubApi
from tests.integration.adapters.conftest import CASES, START, World

GITHUB = next(case for case in CASES if case.id == "github")
TIE = datetime.fromtimestamp(START, UTC)


def version(record: Record) -> tuple[str, str, str]:
    return record.external_id, record.data["title"], record.data["updated_at"]


def current_versions(api: GitHubApi) -> set[tuple[str, str, str]]:
    return {
        (item.id, item.body["title"], item.body["updated_at"])
        for item in api.issues.after(None)
        if "pull_request" not in item.body
    }


def assert_each_current_version_once(pages: list[Page], api: GitHubApi) -> None:
    pulled = Counter(version(record) for page in pages for record in page.records)
    assert [twice for twice, count in pulled.items() if count > 1] == []
    assert current_versions(api) <= set(pulled)


async def edit(world: World, record: Record) -> None:
    async with httpx.AsyncClient(base_url=world.server.url) as controls:
        response = await controls.post("/_sandbox/github/edit", json={"ids": [record.external_id]})
    assert response.status_code == 200


async def test_an_issue_edited_after_the_first_page_shifts_the_list_and_nothing_is_missed(world: World) -> None:
    adapter, connection = world.adapter(GITHUB), world.connection(GITHUB)
    pages: list[Page] = []
    async for page in adapter.fetch(connection, "issue"):
        pages.append(page)
        if len(pages) == 1:
            world.clock.advance(60)
            await edit(world, page.records[3])  # the issue after the first page slides onto it
    assert len(pages) > 2
    assert_each_current_version_once(pages, world.sandbox.github)


async def test_an_issue_edited_inside_a_tie_longer_than_a_page_is_caught_by_walking_the_tie_again(
    world: World,
) -> None:
    world.sandbox.edit("github", count=150)  # 150 issues updated within one second, after the 110 others
    adapter, connection = world.adapter(GITHUB), world.connection(GITHUB)
    pages: list[Page] = []
    edited = False
    async for page in adapter.fetch(connection, "issue"):
        pages.append(page)
        if not edited and page.records and all(record.updated_at == TIE for record in page.records):
            world.clock.advance(1)
            await edit(world, page.records[0])  # read already: the rest of the tie moves one place earlier
            edited = True
    assert edited
    assert_each_current_version_once(pages, world.sandbox.github)
