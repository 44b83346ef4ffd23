"""A small ComfyUI-protocol server for the editor's browser tests and benchmark.

It serves web/dist and implements the routes the editor uses (object_info, prompt, queue,
history, interrupt, view, upload, userdata, ws) with a fake worker that walks the prompt's nodes,
sends progress, one binary preview frame per sampler and writes real PNG outputs with the
workflow embedded, so the editor is exercised end to end without model weights. The real
server replaces it where available (see conftest.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, web
from PIL import Image, PngImagePlugin

WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
STATE_KEY: web.AppKey["MockState"] = web.AppKey("state")
WORKER_KEY: web.AppKey[asyncio.Task] = web.AppKey("worker")

SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform"]
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def object_info(checkpoints: list[str], inputs: list[str]) -> dict:
    """Node definitions shaped exactly like ComfyUI's /object_info for the core SD nodes."""

    def node(name, inputs_req, outputs, category, display=None, optional=None, output_node=False,
             output_names=None, description=""):
        info = {
            "input": {"required": inputs_req},
            "input_order": {"required": list(inputs_req)},
            "output": outputs,
            "output_is_list": [False] * len(outputs),
            "output_name": output_names or outputs,
            "name": name,
            "display_name": display or name,
            "description": description,
            "python_module": "nodes",
            "category": category,
            "output_node": output_node,
        }
        if optional:
            info["input"]["optional"] = optional
            info["input_order"]["optional"] = list(optional)
        return info

    return {
        "CheckpointLoaderSimple": node(
            "CheckpointLoaderSimple", {"ckpt_name": [checkpoints, {"tooltip": "The checkpoint to load."}]},
            ["MODEL", "CLIP", "VAE"], "loaders", "Load Checkpoint",
            description="Loads a diffusion model checkpoint with its text encoder and VAE."),
        "CLIPTextEncode": node(
            "CLIPTextEncode", {"text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP"]},
            ["CONDITIONING"], "conditioning", "CLIP Text Encode (Prompt)",
            description="Encodes a text prompt into conditioning that guides the diffusion model."),
        "EmptyLatentImage": node(
            "EmptyLatentImage",
            {"width": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
             "height": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
             "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}]},
            ["LATENT"], "latent", "Empty Latent Image",
            description="Creates a batch of empty latent images to be denoised."),
        "KSampler": node(
            "KSampler",
            {"model": ["MODEL"],
             "seed": ["INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True}],
             "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
             "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
             "sampler_name": [SAMPLERS],
             "scheduler": [SCHEDULERS],
             "positive": ["CONDITIONING"],
             "negative": ["CONDITIONING"],
             "latent_image": ["LATENT"],
             "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]},
            ["LATENT"], "sampling", "KSampler",
            description="Uses the provided model, positive and negative conditioning to denoise the latent image."),
        "VAEDecode": node("VAEDecode", {"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"], "latent", "VAE Decode",
                          description="Decodes latent images back into pixel space images."),
        "VAEEncode": node("VAEEncode", {"pixels": ["IMAGE"], "vae": ["VAE"]}, ["LATENT"], "latent", "VAE Encode"),
        "SaveImage": node("SaveImage", {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
                          [], "image", "Save Image", output_node=True,
                          description="Saves the input images to your output directory."),
        "PreviewImage": node("PreviewImage", {"images": ["IMAGE"]}, [], "image", "Preview Image", output_node=True),
        "LoadImage": node("LoadImage", {"image": [sorted(inputs), {"image_upload": True}]}, ["IMAGE", "MASK"], "image",
                          "Load Image"),
        "LatentUpscale": node(
            "LatentUpscale",
            {"samples": ["LATENT"], "upscale_method": [["nearest-exact", "bilinear", "area", "bicubic"]],
             "width": ["INT", {"default": 512, "min": 0, "max": 16384, "step": 8}],
             "height": ["INT", {"default": 512, "min": 0, "max": 16384, "step": 8}],
             "crop": [["disabled", "center"]]},
            ["LATENT"], "latent", "Upscale Latent"),
        "ImageInvert": node("ImageInvert", {"image": ["IMAGE"]}, ["IMAGE"], "image", "Invert Image"),
        "CLIPSetLastLayer": node("CLIPSetLastLayer", {"clip": ["CLIP"], "stop_at_clip_layer": ["INT", {"default": -1, "min": -24, "max": -1}]},
                                 ["CLIP"], "conditioning", "CLIP Set Last Layer"),
        "ConditioningCombine": node("ConditioningCombine", {"conditioning_1": ["CONDITIONING"], "conditioning_2": ["CONDITIONING"]},
                                    ["CONDITIONING"], "conditioning", "Conditioning (Combine)"),
        "LoraLoader": node(
            "LoraLoader",
            {"model": ["MODEL"], "clip": ["CLIP"], "lora_name": [["style.safetensors"]],
             "strength_model": ["FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}],
             "strength_clip": ["FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}]},
            ["MODEL", "CLIP"], "loaders", "Load LoRA"),
        "PrimitiveBool": node("PrimitiveBool", {"value": ["BOOLEAN", {"default": False}]}, ["BOOLEAN"], "utils/primitive", "Boolean"),
        "PrimitiveInt": node("PrimitiveInt", {"value": ["INT", {"default": 0, "min": -(2**53), "max": 2**53}]}, ["INT"], "utils/primitive", "Int"),
    }


@dataclass
class Job:
    number: float
    prompt_id: str
    prompt: dict
    extra_data: dict
    outputs: list[str]
    client_id: str | None

    def item(self) -> list:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class MockState:
    root: Path
    step_delay: float = 0.03
    counter: int = 0
    pending: list[Job] = field(default_factory=list)
    running: Job | None = None
    history: dict[str, dict] = field(default_factory=dict)
    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    interrupt: str | None = None
    wake: asyncio.Event | None = None
    prompts_seen: list[dict] = field(default_factory=list)


def _png_bytes(color: tuple[int, int, int], size: int = 64, text: dict[str, str] | None = None) -> bytes:
    img = Image.new("RGB", (size, size), color)
    for y in range(size):
        for x in range(0, size, 8):
            if (x // 8 + y // 8) % 2:
                img.putpixel((x, y), tuple(min(255, c + 40) for c in color))
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _contained(root: Path, rel: str) -> Path:
    path = (root / rel).resolve()
    if root.resolve() not in path.parents and path != root.resolve():
        raise web.HTTPBadRequest(text="path escapes its folder")
    return path


def create_app(root: Path, step_delay: float = 0.03) -> web.Application:
    """The mock server over a scratch folder (input/, output/, user/)."""
    state = MockState(root=root, step_delay=step_delay)
    for sub in ("input", "output", "user/workflows", "models/checkpoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "input" / "example.png").write_bytes(_png_bytes((120, 90, 200)))
    app = web.Application(client_max_size=50 * 1024 * 1024)
    app[STATE_KEY] = state
    routes = web.RouteTableDef()

    def defs() -> dict:
        inputs = [p.name for p in (root / "input").iterdir() if p.is_file()]
        ckpts = sorted(p.name for p in (root / "models" / "checkpoints").iterdir()) or ["tiny-sd15.safetensors"]
        return object_info(ckpts, inputs)

    async def broadcast(msg_type: str, data: dict, client: str | None = None) -> None:
        text = json.dumps({"type": msg_type, "data": data})
        targets = [state.sockets[client]] if client in state.sockets else list(state.sockets.values())
        for ws in targets:
            if not ws.closed:
                await ws.send_str(text)

    async def send_status() -> None:
        remaining = len(state.pending) + (1 if state.running else 0)
        await broadcast("status", {"status": {"exec_info": {"queue_remaining": remaining}}})

    @routes.get("/ws")
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        state.sockets[sid] = ws
        remaining = len(state.pending) + (1 if state.running else 0)
        await ws.send_str(json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}, "sid": sid}}))
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
        if state.sockets.get(sid) is ws:
            del state.sockets[sid]
        return ws

    @routes.get("/object_info")
    async def get_object_info(request: web.Request) -> web.Response:
        return web.json_response(defs())

    def validate(prompt: dict) -> tuple[dict | None, dict]:
        info = defs()
        node_errors: dict = {}
        for nid, node in prompt.items():
            cls = node.get("class_type")
            if cls not in info:
                return {"type": "invalid_prompt", "message": f"Cannot execute because node {cls} does not exist.",
                        "details": f"Node ID '#{nid}'", "extra_info": {}}, {}
            errors = []
            required = info[cls]["input"]["required"]
            for name, spec in required.items():
                value = node["inputs"].get(name)
                if value is None:
                    errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                   "details": name, "extra_info": {"input_name": name}})
                    continue
                if isinstance(value, list):
                    continue
                opts = spec[1] if len(spec) > 1 else {}
                if isinstance(spec[0], list) and value not in spec[0]:
                    errors.append({"type": "value_not_in_list", "message": "Value not in list",
                                   "details": f"{name}: '{value}' not in list", "extra_info": {"input_name": name}})
                if spec[0] in ("INT", "FLOAT") and isinstance(value, (int, float)):
                    if "min" in opts and value < opts["min"]:
                        errors.append({"type": "value_smaller_than_min", "message": f"Value {value} smaller than min of {opts['min']}",
                                       "details": name, "extra_info": {"input_name": name}})
                    if "max" in opts and value > opts["max"]:
                        errors.append({"type": "value_bigger_than_max", "message": f"Value {value} bigger than max of {opts['max']}",
                                       "details": name, "extra_info": {"input_name": name}})
            if errors:
                node_errors[nid] = {"errors": errors, "dependent_outputs": [], "class_type": cls}
        outputs = [nid for nid, n in prompt.items() if info[n["class_type"]]["output_node"]]
        if not outputs:
            return {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}, {}
        if node_errors:
            details = "; ".join(f"{e['message']}: {e['details']}" for v in node_errors.values() for e in v["errors"])
            return {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                    "details": details, "extra_info": {}}, node_errors
        return None, {}

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body.get("prompt")
        if not isinstance(prompt, dict):
            return web.json_response({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "", "extra_info": {}},
                                      "node_errors": {}}, status=400)
        state.prompts_seen.append(prompt)
        error, node_errors = validate(prompt)
        if error:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        state.counter += 1
        number = -state.counter if body.get("front") else state.counter
        if "number" in body:
            number = float(body["number"])
        job = Job(number, body.get("prompt_id") or str(uuid.uuid4()), prompt,
                  {**body.get("extra_data", {}), "client_id": body.get("client_id")},
                  [nid for nid, n in prompt.items() if n["class_type"] in ("SaveImage", "PreviewImage")],
                  body.get("client_id"))
        state.pending.append(job)
        state.pending.sort(key=lambda j: j.number)
        state.wake.set()
        await send_status()
        return web.json_response({"prompt_id": job.prompt_id, "number": number, "node_errors": {}})

    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": len(state.pending) + (1 if state.running else 0)}})

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [state.running.item()] if state.running else [],
                                  "queue_pending": [j.item() for j in state.pending]})

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            state.pending.clear()
        for pid in body.get("delete", []):
            state.pending = [j for j in state.pending if j.prompt_id != pid]
        await send_status()
        return web.Response()

    @routes.post("/lg/jobs/{prompt_id}/cancel")
    async def cancel_job(request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        if state.running and state.running.prompt_id == pid:
            state.interrupt = pid
        elif any(j.prompt_id == pid for j in state.pending):
            state.pending = [j for j in state.pending if j.prompt_id != pid]
        else:
            return web.json_response({"error": "no such job"}, status=404)
        await send_status()
        return web.json_response({"ok": True})

    @routes.post("/lg/jobs/{prompt_id}/priority")
    async def set_priority(request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        body = await request.json()
        for j in state.pending:
            if j.prompt_id == pid:
                j.number = float(body["priority"])
        state.pending.sort(key=lambda j: j.number)
        return web.json_response({"ok": True})

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        max_items = int(request.query.get("max_items", "1000"))
        items = list(state.history.items())[-max_items:]
        return web.json_response(dict(items))

    @routes.get("/history/{prompt_id}")
    async def get_history_one(request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        return web.json_response({pid: state.history[pid]} if pid in state.history else {})

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            state.history.clear()
        for pid in body.get("delete", []):
            state.history.pop(pid, None)
        return web.Response()

    @routes.post("/interrupt")
    async def interrupt(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        pid = body.get("prompt_id")
        if state.running and (pid is None or pid == state.running.prompt_id):
            state.interrupt = state.running.prompt_id
        return web.Response()

    @routes.get("/view")
    async def view(request: web.Request) -> web.Response:
        kind = request.query.get("type", "output")
        if kind not in ("input", "output", "temp"):
            raise web.HTTPBadRequest()
        folder = root / kind
        path = _contained(folder, str(Path(request.query.get("subfolder", "")) / request.query["filename"]))
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    @routes.post("/upload/image")
    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        image = form["image"]
        name = Path(image.filename).name
        target = _contained(root / "input", name)
        target.write_bytes(image.file.read())
        return web.json_response({"name": name, "subfolder": "", "type": "input"})

    user = root / "user"

    @routes.get("/userdata")
    async def list_userdata(request: web.Request) -> web.Response:
        folder = _contained(user, request.query.get("dir", ""))
        if not folder.is_dir():
            return web.json_response({"error": "not found"}, status=404)
        full = request.query.get("full_info") == "true"
        out = []
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                rel = p.relative_to(folder).as_posix()
                out.append({"path": rel, "size": p.stat().st_size, "modified": p.stat().st_mtime} if full else rel)
        return web.json_response(out)

    @routes.get("/userdata/{file}")
    async def get_userdata(request: web.Request) -> web.Response:
        path = _contained(user, request.match_info["file"])
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    @routes.post("/userdata/{file}")
    async def post_userdata(request: web.Request) -> web.Response:
        path = _contained(user, request.match_info["file"])
        if path.exists() and request.query.get("overwrite") == "false":
            return web.json_response({"error": "exists"}, status=409)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(await request.read())
        return web.json_response(path.relative_to(user).as_posix())

    @routes.delete("/userdata/{file}")
    async def delete_userdata(request: web.Request) -> web.Response:
        path = _contained(user, request.match_info["file"])
        if not path.is_file():
            raise web.HTTPNotFound()
        path.unlink()
        return web.Response(status=204)

    @routes.post("/userdata/{file}/move/{dest}")
    async def move_userdata(request: web.Request) -> web.Response:
        src = _contained(user, request.match_info["file"])
        dst = _contained(user, request.match_info["dest"])
        if not src.is_file():
            raise web.HTTPNotFound()
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.replace(dst)
        return web.json_response(dst.relative_to(user).as_posix())

    async def run_job(job: Job) -> None:
        client = job.client_id
        pid = job.prompt_id
        await broadcast("execution_start", {"prompt_id": pid, "timestamp": int(time.time() * 1000)}, client)
        loader_ids = [nid for nid, n in job.prompt.items() if n["class_type"] == "CheckpointLoaderSimple"]
        cached = loader_ids if state.history else []
        await broadcast("execution_cached", {"nodes": cached, "prompt_id": pid}, client)
        outputs: dict = {}
        for nid, node in job.prompt.items():
            if nid in cached:
                continue
            if state.interrupt == pid:
                break
            await broadcast("executing", {"node": nid, "display_node": nid, "prompt_id": pid}, client)
            cls = node["class_type"]
            if cls == "KSampler":
                steps = int(node["inputs"].get("steps", 20))
                for i in range(1, steps + 1):
                    if state.interrupt == pid:
                        break
                    await asyncio.sleep(state.step_delay)
                    await broadcast("progress", {"value": i, "max": steps, "prompt_id": pid, "node": nid}, client)
                    if i == max(1, steps // 2) and client in state.sockets:
                        meta = json.dumps({"node_id": nid, "prompt_id": pid, "image_type": "image/png"}).encode()
                        frame = struct.pack(">II", 4, len(meta)) + meta + _png_bytes((200, 120, 40), 32)
                        await state.sockets[client].send_bytes(frame)
            elif cls == "VAEDecode" and "fail" in json.dumps(job.prompt):
                await broadcast("execution_error", {
                    "prompt_id": pid, "node_id": nid, "node_type": cls, "executed": [],
                    "exception_message": "mock decode failure", "exception_type": "RuntimeError",
                    "traceback": [], "current_inputs": {}, "current_outputs": []}, client)
                state.history[pid] = {"prompt": job.item(), "outputs": outputs, "status": {
                    "status_str": "error", "completed": False,
                    "messages": [["execution_error", {"exception_message": "mock decode failure"}]]}}
                return
            elif cls in ("SaveImage", "PreviewImage"):
                prefix = str(node["inputs"].get("filename_prefix", "preview"))
                name = f"{prefix}_{len(list((root / 'output').iterdir())) + 1:05}_.png"
                text = {"prompt": json.dumps(job.prompt)}
                wf = job.extra_data.get("extra_pnginfo", {}).get("workflow")
                if wf is not None:
                    text["workflow"] = json.dumps(wf)
                (root / "output" / name).write_bytes(_png_bytes((40, 140, 200), 64, text))
                ui = {"images": [{"filename": name, "subfolder": "", "type": "output"}]}
                outputs[nid] = ui
                await broadcast("executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid}, client)
            else:
                await asyncio.sleep(0.005)
        if state.interrupt == pid:
            await broadcast("execution_interrupted", {"prompt_id": pid, "node_id": "", "node_type": "", "executed": []})
            status = {"status_str": "error", "completed": False, "messages": [["execution_interrupted", {}]]}
        else:
            await broadcast("execution_success", {"prompt_id": pid, "timestamp": int(time.time() * 1000)}, client)
            status = {"status_str": "success", "completed": True, "messages": []}
        state.history[pid] = {"prompt": job.item(), "outputs": outputs, "status": status}

    async def worker(app: web.Application) -> None:
        while True:
            await state.wake.wait()
            state.wake.clear()
            while state.pending:
                job = state.pending.pop(0)
                state.running = job
                await send_status()
                try:
                    await run_job(job)
                finally:
                    state.running = None
                    state.interrupt = None
                    await broadcast("executing", {"node": None, "prompt_id": job.prompt_id}, job.client_id)
                    await send_status()

    async def start_worker(app: web.Application) -> None:
        state.wake = asyncio.Event()
        app[WORKER_KEY] = asyncio.create_task(worker(app))

    async def stop_worker(app: web.Application) -> None:
        app[WORKER_KEY].cancel()
        for ws in list(state.sockets.values()):
            await ws.close()

    app.on_startup.append(start_worker)
    app.on_cleanup.append(stop_worker)

    api = web.RouteTableDef()
    for r in routes:
        api.route(r.method, "/api" + r.path)(r.handler)
    app.add_routes(routes)
    app.add_routes(api)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIST / "index.html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    if WEB_DIST.is_dir():
        app.router.add_static("/", WEB_DIST)
    return app


class ServerThread:
    """Run an aiohttp app on a loopback port in a background thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.runner = web.AppRunner(self.app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
            self._ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def start(self) -> "ServerThread":
        self.thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("mock server did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        async def shutdown() -> None:
            if self.runner:
                await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


if __name__ == "__main__":  # manual use: python tests/web/mock_server.py /tmp/lg-mock 8189
    import sys

    web.run_app(create_app(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lg-mock")),
                host="127.0.0.1", port=int(sys.argv[2]) if len(sys.argv) > 2 else 8189)
