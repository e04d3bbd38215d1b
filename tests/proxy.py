"""A TCP proxy the test controls, to cut parkwatch off from PostgreSQL without touching the server."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; block() severs every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> None:
        """Listen (on `port`, or any free port the first time)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def block(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()
        self._writers.clear()

    async def unblock(self) -> None:
        """Listen again on the same port."""
        await self.start(self.port)

    async def close(self) -> None:
        """Block and forget."""
        await self.block()
        for task in list(self._tasks):
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer), name="proxy.up"),
            asyncio.create_task(pipe(up_reader, writer), name="proxy.down"),
        ]
        self._tasks.update(tasks)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks)
        self._tasks.difference_update(tasks)
        self._writers -= {writer, up_writer}
