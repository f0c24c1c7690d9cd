"""The BUFR worker process itself (``python -m obslink.plugins.bufr_worker_process``): it
reads messages from stdin and writes their readings to stdout, decoding with the BUFR
adapter in process. The agent's side of the pipes is :mod:`obslink.plugins.bufr_worker`."""

from __future__ import annotations

import sys

import msgpack

from obslink.plugins.bufr import BUFRAdapter
from obslink.plugins.bufr_worker import FRAME_HEADER
from obslink.plugins.formats import AdapterContext, Decoded


def serve(stdin, stdout) -> None:
    """The worker's loop: a message in, its readings out, until stdin closes."""
    adapters: dict[bytes, BUFRAdapter] = {}
    while len(header := stdin.read(FRAME_HEADER.size)) == FRAME_HEADER.size:
        request = msgpack.unpackb(stdin.read(FRAME_HEADER.unpack(header)[0]), raw=False)
        context = request["context"]
        key = msgpack.packb(context)
        adapter = adapters.get(key)
        if adapter is None:
            adapter = adapters[key] = BUFRAdapter(AdapterContext(
                context["station"], 0, context["options"],
                {field: tuple(target) for field, target in context["element_map"].items()}),
                in_process=True)
        result = Decoded()
        problem = adapter.take_message(request["message"], result)
        body = msgpack.packb({"readings": [list(r) for r in result.readings],
                              "skipped": result.skipped_text, "problem": problem},
                             use_bin_type=True)
        stdout.write(FRAME_HEADER.pack(len(body)) + body)
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
