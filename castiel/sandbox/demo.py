"""The demo tenant of ``castiel serve --sandbox``: one connection per provider against the sandbox, GitHub issues and
the Notion tasks database sharing the ``task`` shard type both ways.
"""

from __future__ import annotations

from typing import Any

GITHUB_TASKS: dict[str, Any] = {
    "issue": {
        "shardType": "task",
        "fields": {
            "title": "title",
            "number": {"field": "number", "type": "integer", "readOnly": True},
            "state": {"field": "state", "readOnly": True},
        },
    }
}
"""GitHub issues as tasks: the title both ways; the number (what GitHub addresses an issue by) and state read only."""

NOTION_TASKS: dict[str, Any] = {
    "page": {
        "shardType": "task",
        "fields": {
            "properties.Name.title[0].text.content": "title",
            "properties.Status.select.name": "status",
            "properties.Estimate.number": {"field": "estimate", "type": "number"},
        },
    }
}
"""Pages of the Notion tasks data source as tasks: the title (shared with GitHub), status and estimate."""
