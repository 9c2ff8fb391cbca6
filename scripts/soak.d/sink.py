#!/usr/bin/env python3
"""The far end of the idle tunnels in `scripts/soak`: accepts on a loopback
port and holds every connection open, saying nothing, until the peer closes.

    sink.py PORT_FILE

Binds 127.0.0.1:0, writes the port to PORT_FILE, then serves until killed.
Its own process, so its sockets do not count against the soak driver's
open-file limit (both may need 10,000).
"""

import asyncio
import resource
import sys


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.read(65536):
            pass
    except OSError:
        pass
    finally:
        writer.close()


async def main(port_file: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = await asyncio.start_server(hold, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(port_file, "w") as f:
        f.write(str(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
