"""SaveImageWebsocket with ComfyUI's script_examples/websockets_api_example_ws_images.py client loop."""

from __future__ import annotations

import io
import json
import struct
import urllib.request
import uuid

import websocket  # websocket-client, as the ComfyUI example uses
from PIL import Image

from engine.registry import NodeRegistry
from nodes.image import EmptyImage
from nodes.image_save import SaveImageWebsocket
from server.context import ServerConfig
from tests.server.harness import ServerThread, make_runtime


def get_images(ws: websocket.WebSocket, address: str, client_id: str, prompt: dict) -> dict[str, list[bytes]]:
    """The example client's get_images(), unchanged in substance."""
    data = json.dumps({"prompt": prompt, "client_id": client_id}).encode("utf-8")
    request = urllib.request.Request(f"http://{address}/prompt", data=data)
    prompt_id = json.loads(urllib.request.urlopen(request).read())["prompt_id"]
    output_images: dict[str, list[bytes]] = {}
    current_node = ""
    while True:
        out = ws.recv()
        if isinstance(out, str):
            message = json.loads(out)
            if message["type"] == "executing":
                data = message["data"]
                if data["prompt_id"] == prompt_id:
                    if data["node"] is None:
                        break
                    current_node = data["node"]
        elif current_node == "save_image_websocket_node":
            output_images.setdefault(current_node, []).append(out[8:])
            assert struct.unpack(">II", out[:8]) == (1, 2)  # preview event, PNG
    return output_images


def test_comfyui_websocket_images_example_receives_full_pngs(tmp_path) -> None:
    registry = NodeRegistry()
    registry.register_mappings({"EmptyImage": EmptyImage, "SaveImageWebsocket": SaveImageWebsocket}, {},
                               "nodes.image_save")
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24, "batch_size": 2,
                                                           "color": 0x10A0F0}},
              "save_image_websocket_node": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}}}
    with ServerThread(make_runtime(tmp_path, registry), ServerConfig(port=0, web_root=tmp_path / "none")) as server:
        client_id = str(uuid.uuid4())
        ws = websocket.WebSocket()
        ws.connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}")
        try:
            images = get_images(ws, f"127.0.0.1:{server.port}", client_id, prompt)
            again = get_images(ws, f"127.0.0.1:{server.port}", client_id, prompt)  # never served from cache
        finally:
            ws.close()
    for received in (images, again):
        frames = received["save_image_websocket_node"]
        assert len(frames) == 2
        for frame in frames:
            with Image.open(io.BytesIO(frame)) as picture:
                assert picture.format == "PNG" and picture.size == (40, 24)
                assert picture.convert("RGB").getpixel((5, 5)) == (0x10, 0xA0, 0xF0)
