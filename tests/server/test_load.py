"""Load: 20 websocket clients each queue 20 cheap prompts at once. Everything completes, every
client receives exactly its own prompts' events and nothing else, and nothing is lost."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import aiohttp
import pytest

from tests.server.harness import ServerThread

CLIENTS, PROMPTS_EACH = 20, 20


def _prompt(value: int) -> dict[str, Any]:
    return {"1": {"class_type": "TestNumber", "inputs": {"value": value}},
            "2": {"class_type": "TestAdd", "inputs": {"a": ["1", 0], "b": 1}},
            "3": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}}}


async def _client(session: aiohttp.ClientSession, base: str, index: int) -> dict[str, Any]:
    client_id = f"load-{index}"
    async with session.ws_connect(f"{base}/ws?clientId={client_id}") as ws:
        first = json.loads((await ws.receive()).data)
        assert first["type"] == "status" and first["data"]["sid"] == client_id
        queued: dict[str, int] = {}
        for n in range(PROMPTS_EACH):
            value = 100_000 * (index + 1) + n
            async with session.post(f"{base}/prompt", json={"prompt": _prompt(value),
                                                           "client_id": client_id}) as response:
                assert response.status == 200, await response.text()
                queued[(await response.json())["prompt_id"]] = value
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        foreign: list[dict[str, Any]] = []
        finished: set[str] = set()
        while finished != set(queued):
            message = await asyncio.wait_for(ws.receive(), timeout=60)
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            prompt_id = data.get("data", {}).get("prompt_id")
            if data["type"] == "status":
                continue
            if prompt_id not in queued:
                foreign.append(data)
                continue
            events[prompt_id].append(data)
            if data["type"] == "executing" and data["data"]["node"] is None:
                finished.add(prompt_id)
        return {"queued": queued, "events": events, "foreign": foreign}


async def _run(base: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(_client(session, base, i) for i in range(CLIENTS)))


@pytest.mark.slow
def test_twenty_clients_twenty_prompts_each(server: ServerThread) -> None:
    results = asyncio.run(_run(server.base))
    assert len(results) == CLIENTS
    for result in results:
        assert result["foreign"] == [], "a client received another client's events"
        assert len(result["queued"]) == PROMPTS_EACH
        for prompt_id, value in result["queued"].items():
            kinds = [e["type"] for e in result["events"][prompt_id]]
            assert kinds[0] == "execution_start" and kinds[-1] == "executing", kinds
            assert "execution_success" in kinds
            outputs = [e["data"]["output"] for e in result["events"][prompt_id]
                       if e["type"] == "executed"]
            assert outputs == [{"text": [str(value + 1)]}]
    history = server.get("/history").json()
    queued_ids = {pid for result in results for pid in result["queued"]}
    assert queued_ids <= set(history)
    assert all(history[pid]["status"]["status_str"] == "success" for pid in queued_ids)
