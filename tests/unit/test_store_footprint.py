"""The table store reports the bytes of member state it holds, as writes and deletes change it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.service import Hearth
from agents.settings import Settings


def test_bytes_held_follows_writes_overwrites_and_deletes(tmp_path: Path) -> None:
    hearth = Hearth(Settings(app_id="unit-footprint", data_dir=tmp_path))
    try:
        store = hearth.table.data
        assert store.bytes_held() == 0
        store.set_in_partition(b"forum/a", b"x" * 100, 0)
        store.set_in_partition(b"forum/b", b"y" * 40, 1)
        assert store.bytes_held() == 140
        store.set_in_partition(b"forum/a", b"x" * 10, 0)
        assert store.bytes_held() == 50
        store.set_in_partition(b"forum/b", None, 1)
        assert store.bytes_held() == 10
    finally:
        asyncio.run(hearth.redis.aclose())
