"""A cheap stand-in for an OpenAI-compatible LLM server, for bench/worker_throughput.py.

    python bench/llm_standin.py LATENCY_S  -> prints its base URL, serves until killed

One asyncio loop, HTTP/1.1 keep-alive, no framework: each chat completion is answered after
a fixed `asyncio.sleep(LATENCY_S)` (a model's thinking time, costing no CPU), so that what the
benchmark measures is the worker, not this server. Runs take 4 steps with a read-only data
tool, then say done. GET /stats tells how many completions it served and its own CPU time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

STEPS_BEFORE_DONE = 4


def _reply(body: dict[str, Any]) -> str:
    """The agent's next step: count leads four times, then done."""
    turns = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
    if turns < STEPS_BEFORE_DONE:
        step = {
            "thought": "count",
            "tool": "count_database",
            "args": {"table": "app_leads"},
            "done": False,
        }
    else:
        step = {"thought": "done", "done": True, "summary": "counted"}
    return json.dumps(step)


def _completion(body: dict[str, Any], number: int) -> dict[str, Any]:
    content = _reply(body)
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": len(content) // 4},
    }


class StandIn:
    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path = request_line.split(" ")[:2]
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in header_lines if line)
                }
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                document = await self._answer(method, path, raw)
                payload = json.dumps(document).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its connection
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, raw: bytes) -> dict[str, Any]:
        if method == "GET" and path.endswith("/stats"):
            return {"served": self.served, "cpu_s": time.process_time()}
        if method == "GET" and path.rstrip("/").endswith("/models"):
            return {"object": "list", "data": [{"id": "bench-model", "object": "model"}]}
        body = json.loads(raw or b"{}")
        await asyncio.sleep(self.latency_s)
        self.served += 1
        return _completion(body, self.served)


async def serve(latency_s: float) -> None:
    standin = StandIn(latency_s)
    server = await asyncio.start_server(standin.handle, "127.0.0.1", 0, backlog=1024)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"http://{host}:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(float(sys.argv[1])))
