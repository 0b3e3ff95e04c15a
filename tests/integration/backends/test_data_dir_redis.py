"""One embedded Redis per data directory: shared by every process on it, gone with the last of them, even on
``kill -9``; a stale record is detected and replaced."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from castiel.backends import data_dir_redis
from castiel.backends.embedded_redis import EmbeddedRedis, free_port, identify
from tests.e2e.processes import eventually, is_running

REPO = Path(__file__).parents[3]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def user_process(directory: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process using the data directory's Redis (it started it), until killed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.backends.redis_user_proc", str(directory)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    process.kill()
    process.wait()


def record_of(process: subprocess.Popen[str]) -> data_dir_redis.RedisRecord:
    assert process.stdout is not None
    return data_dir_redis.RedisRecord.from_json(json.loads(process.stdout.readline()))


def test_the_first_process_starts_and_records_it_and_the_next_one_shares_it(directory: Path) -> None:
    first = data_dir_redis.join(directory)
    second = data_dir_redis.join(directory)
    try:
        assert second.record == first.record
        assert data_dir_redis.read_record(directory) == first.record
        identity = identify(first.record.port)
        assert identity is not None
        assert (identity.pid, identity.run_id) == (first.record.pid, first.record.run_id)
        redis.Redis.from_url(first.url).set("shared", "yes")
        assert redis.Redis.from_url(second.url).get("shared") == b"yes"
    finally:
        first.release()
        second.release()
    eventually(lambda: not is_running(first.record.pid), "the server to stop once nobody uses it")


def test_a_kill_9_of_the_only_user_takes_the_server_with_it(user_process: subprocess.Popen[str]) -> None:
    record = record_of(user_process)
    assert is_running(record.pid)

    user_process.send_signal(signal.SIGKILL)
    user_process.wait()

    eventually(lambda: not is_running(record.pid), "the Redis server of a killed process to stop")
    eventually(lambda: not is_running(record.supervisor_pid), "its supervisor to exit")
    assert identify(record.port) is None


def test_the_server_outlives_its_starter_while_another_process_still_uses_it(
    directory: Path, user_process: subprocess.Popen[str]
) -> None:
    started = record_of(user_process)
    lease = data_dir_redis.join(directory)
    try:
        assert lease.record == started
        user_process.send_signal(signal.SIGKILL)
        user_process.wait()
        assert redis.Redis.from_url(lease.url).ping()
        assert lease.record.is_live()
    finally:
        lease.release()
    eventually(lambda: not is_running(started.pid), "the server to stop with its last user")


def test_a_record_of_a_server_that_is_gone_is_replaced(directory: Path) -> None:
    lease = data_dir_redis.join(directory)
    gone = lease.record
    lease.release()
    eventually(lambda: not gone.is_live(), "the first server to stop")

    replacement = data_dir_redis.join(directory)
    try:
        assert replacement.record.run_id != gone.run_id
        assert replacement.record.is_live()
        assert data_dir_redis.read_record(directory) == replacement.record
    finally:
        replacement.release()


def test_a_record_whose_port_now_answers_for_another_server_is_replaced(directory: Path) -> None:
    with EmbeddedRedis() as stranger:
        stale = data_dir_redis.RedisRecord(
            port=stranger.port,
            pid=1,
            run_id="0" * 40,
            supervisor_pid=1,
            started_by=1,
            started_at="2026-01-01T00:00:00.000000Z",
        )
        directory.mkdir()
        (directory / data_dir_redis.RECORD_FILE).write_text(json.dumps(stale.as_json()))

        lease = data_dir_redis.join(directory)
        try:
            assert lease.record.port != stranger.port
            assert lease.record.is_live()
        finally:
            lease.release()


@pytest.mark.parametrize("content", ["", "{not json", '{"port": 1}'])
def test_an_unreadable_record_is_replaced(directory: Path, content: str) -> None:
    directory.mkdir()
    (directory / data_dir_redis.RECORD_FILE).write_text(content)
    lease = data_dir_redis.join(directory)
    try:
        assert lease.record.is_live()
        assert data_dir_redis.read_record(directory) == lease.record
    finally:
        lease.release()


def test_a_record_of_a_port_nobody_listens_on_is_not_live() -> None:
    record = data_dir_redis.RedisRecord(free_port(), 1, "0" * 40, 1, 1, "2026-01-01T00:00:00.000000Z")
    assert not record.is_live()
