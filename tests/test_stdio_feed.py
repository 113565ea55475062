"""The stdio line feed: one reader thread hands lines to the event loop in order, bounded, and ends at EOF."""

from __future__ import annotations

import io
import os
import threading
import time

import anyio
import pytest

from kpimcp.servers.stdio import _FEED_DEPTH, _LineFeed, _ThreadPerLine


async def _drain(feed) -> list[tuple[bytes, bool]]:
    out = []
    while True:
        line, too_long = await feed.next()
        if not line:
            return out
        out.append((line, too_long))


def test_lines_arrive_in_order_and_the_feed_ends_at_eof():
    stream = io.BytesIO(b"".join(b'{"n":%d}\n' % i for i in range(50)) + b"x" * 300 + b"\nlast")

    async def main():
        feed = _LineFeed.start(stream, 100)
        assert isinstance(feed, _LineFeed)  # asyncio: its own thread
        return await _drain(feed)

    got = anyio.run(main)
    assert [line for line, _ in got[:50]] == [b'{"n":%d}\n' % i for i in range(50)]
    assert got[50][1] is True and len(got[50][0]) <= 64 * 1024  # over the limit: its start, flagged
    assert got[51] == (b"last", False)  # a final line without a newline still counts
    assert len(got) == 52


def test_the_reader_reads_at_most_a_few_lines_ahead_of_the_server():
    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    lines_read = []
    original = reader.readline

    class Counting(io.RawIOBase):  # counts what the thread has taken from the pipe
        def readline(self, size=-1):
            line = original(size)
            lines_read.append(line)
            return line

    def flood():
        for i in range(100):
            writer.write(b"%d\n" % i)
            writer.flush()
        writer.close()

    async def main():
        threading.Thread(target=flood, daemon=True).start()
        feed = _LineFeed.start(Counting(), 1000)
        deadline = time.monotonic() + 5
        while len(lines_read) < _FEED_DEPTH and time.monotonic() < deadline:
            await anyio.sleep(0.01)
        await anyio.sleep(0.2)  # time enough to read on, if nothing held the thread back
        ahead = len(lines_read)
        got = await _drain(feed)
        return ahead, got

    ahead, got = anyio.run(main)
    assert ahead == _FEED_DEPTH  # held back while the server takes nothing
    assert [line for line, _ in got] == [b"%d\n" % i for i in range(100)]
    reader.close()


def test_a_broken_stream_raises_in_the_server_not_in_the_thread():
    class Broken(io.RawIOBase):
        def readline(self, size=-1):
            raise OSError("stream gone")

    async def main():
        await _LineFeed.start(Broken(), 100).next()

    with pytest.raises(OSError, match="stream gone"):
        anyio.run(main)


def test_the_fallback_feed_reads_the_same_lines():
    stream = io.BytesIO(b"a\nb\n")
    assert anyio.run(_drain, _ThreadPerLine(stream, 100)) == [(b"a\n", False), (b"b\n", False)]
