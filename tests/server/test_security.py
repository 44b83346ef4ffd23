"""Security by default: Origin/Host checks, tokens, path containment, safe file serving, uploads."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import websocket
from PIL import Image

from server.context import ServerConfig
from server.main import build_parser, config_from_args
from tests.server.harness import ServerThread, chain_prompt, http_request, make_runtime

TRAVERSALS = ["../secret.txt", "..\\secret.txt", "/etc/passwd", "C:\\Windows\\win.ini",
              "a/../../secret.txt", "sub/../../../secret.txt",
              "ok\x00.png", "escape_link/secret.txt"]


def _png(color: tuple[int, int, int] = (10, 20, 30), size: int = 8, **text: str) -> bytes:
    out = io.BytesIO()
    info = None
    if text:
        from PIL import PngImagePlugin
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    Image.new("RGBA", (size, size), (*color, 255)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                     f"{value}\r\n".encode())
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
                 f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                 .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(server: ServerThread, data: bytes, filename: str = "pic.png", path: str = "/upload/image",
           **fields: str):
    body, content_type = _multipart(fields, filename, data)
    return server.post(path, raw=body, headers={"Content-Type": content_type})


@pytest.fixture(scope="module")
def secret_outside(base_dir: Path) -> Path:
    """A file next to the base directory that no route may ever reveal, plus a symlink to it."""
    secret = base_dir.parent / f"secret-{uuid.uuid4().hex}.txt"
    secret.write_text("TOP SECRET")
    for folder in ("input", "output", "temp", "user/default"):
        directory = base_dir / folder
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "escape_link").symlink_to(base_dir.parent, target_is_directory=True)
        (directory / "secret.txt.lnk").symlink_to(secret)
    return secret


# -- cross-site requests and DNS rebinding --------------------------------------------------------
def test_foreign_origin_cannot_change_state(server: ServerThread) -> None:
    body = {"prompt": chain_prompt(1)}
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.port + 1}",
                   f"https://127.0.0.1:{server.port}"):
        refused = server.post("/prompt", body, headers={"Origin": origin})
        assert refused.status == 403 and refused.json()["error"]["type"] == "foreign_origin"
    assert server.post("/prompt", body, headers={"Sec-Fetch-Site": "cross-site"}).status == 403
    same = server.post("/prompt", body, headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert same.status == 200
    # reading is harmless and stays allowed (CORS keeps the response from foreign pages)
    assert server.get("/queue", headers={"Origin": "http://evil.example"}).status == 200


def test_foreign_origin_websocket_handshake_refused(server: ServerThread) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId=x",
                                    origin="http://evil.example", timeout=5)
    assert refused.value.status_code == 403
    ok = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId=y",
                                     origin=f"http://127.0.0.1:{server.port}", timeout=5)
    assert json.loads(ok.recv())["type"] == "status"
    ok.close()


def test_rebinding_host_names_are_refused(server: ServerThread) -> None:
    for host in (f"evil.example:{server.port}", "attacker.test", "", "bad host:1"):
        response = server.get("/queue", headers={"Host": host})
        assert response.status in (400, 403), host
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}",
                 f"192.168.1.20:{server.port}"):
        assert server.get("/queue", headers={"Host": host}).status == 200, host


def test_cors_opt_in_allows_exactly_that_origin(tmp_path: Path) -> None:
    config = ServerConfig(port=0, cors_origins=frozenset({"http://tool.local:3000"}))
    with ServerThread(make_runtime(tmp_path), config) as server:
        allowed = server.post("/prompt", {"prompt": chain_prompt(1)},
                              headers={"Origin": "http://tool.local:3000"})
        assert allowed.status == 200
        assert allowed.headers["access-control-allow-origin"] == "http://tool.local:3000"
        preflight = server.request("OPTIONS", "/prompt",
                                   headers={"Origin": "http://tool.local:3000",
                                            "Access-Control-Request-Method": "POST"})
        assert preflight.status == 204
        assert server.post("/prompt", {"prompt": chain_prompt(1)},
                           headers={"Origin": "http://other.local"}).status == 403


# -- tokens ------------------------------------------------------------------------------------
def test_listen_without_token_generates_one_and_requires_it(tmp_path: Path) -> None:
    args = build_parser_args(["--listen", "--port", "0"])
    config = config_from_args(args)
    assert config.token and len(config.token) >= 24
    config.hosts = ["127.0.0.1"]  # keep the test on loopback; the token rule stays in force
    with ServerThread(make_runtime(tmp_path), config) as server:
        assert server.get("/queue").status == 401
        page = server.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.status == 401 and b"?token=" in page.body
        assert server.get("/queue", headers={"Authorization": "Bearer wrong"}).status == 401
        assert server.get("/queue", headers={"Authorization": f"Bearer {config.token}"}).status == 200
        assert server.get("/", headers={"Cookie": f"latentgraph_token={config.token}"}).status == 200
        opened = server.get(f"/?token={config.token}")
        assert opened.status == 302 and opened.headers["location"] == "/"
        assert "latentgraph_token" in opened.headers["set-cookie"]
        assert "HttpOnly" in opened.headers["set-cookie"]
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws", timeout=5)
        assert refused.value.status_code == 401
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws",
                                         header=[f"Authorization: Bearer {config.token}"],
                                         timeout=5)
        assert json.loads(ws.recv())["type"] == "status"
        ws.close()
        # the query token is only the printed start-up URL: never accepted on POST or websocket
        assert server.post(f"/prompt?token={config.token}", {"prompt": chain_prompt(1)}).status == 401
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?token={config.token}", timeout=5)
        assert refused.value.status_code == 401


def test_prompt_ids_that_look_like_paths_are_refused(server: ServerThread) -> None:
    for prompt_id in ("a/b", "..", "x..y", "a\\b", "../../etc"):
        refused = server.post("/prompt", {"prompt": chain_prompt(1), "prompt_id": prompt_id})
        assert refused.status == 400 and refused.json()["error"]["type"] == "invalid_parameter", prompt_id
    assert server.post("/prompt", {"prompt": chain_prompt(1), "prompt_id": "job-1.png_ok"}).status == 200



def build_parser_args(argv: list[str]):
    try:
        return build_parser().parse_args(argv)
    except ModuleNotFoundError:  # app.settings not there yet: the server flags alone
        import argparse

        from server.main import add_server_arguments
        parser = argparse.ArgumentParser()
        add_server_arguments(parser)
        return parser.parse_args(argv)


def test_loopback_default_needs_no_token() -> None:
    config = config_from_args(build_parser_args([]))
    assert config.hosts == ["127.0.0.1"] and config.token is None and config.port == 8188


# -- traversal on every path-taking route --------------------------------------------------------
@pytest.mark.parametrize("evil", TRAVERSALS)
def test_view_refuses_traversal(server: ServerThread, secret_outside: Path, evil: str) -> None:
    from urllib.parse import quote
    for query in (f"filename={quote(evil)}", f"filename=x.png&subfolder={quote(evil)}",
                  f"filename=secret.txt.lnk", f"filename=x&type={quote(evil)}"):
        response = server.get(f"/view?{query}")
        assert response.status in (400, 403, 404), query
        assert b"TOP SECRET" not in response.body


@pytest.mark.parametrize("evil", TRAVERSALS)
def test_userdata_refuses_traversal(server: ServerThread, secret_outside: Path, evil: str) -> None:
    from urllib.parse import quote
    encoded = quote(evil, safe="")
    for method, path in (("GET", f"/userdata/{encoded}"), ("POST", f"/userdata/{encoded}"),
                         ("DELETE", f"/userdata/{encoded}"),
                         ("POST", f"/userdata/ok.json/move/{encoded}"),
                         ("GET", f"/userdata?dir={encoded}"), ("GET", f"/v2/userdata?path={encoded}"),
                         ("GET", "/userdata/secret.txt.lnk")):
        response = server.request(method, path, raw=b"x")
        assert response.status in (400, 403, 404, 405), (method, path, response.status)
        assert b"TOP SECRET" not in response.body
    assert secret_outside.read_text() == "TOP SECRET"


@pytest.mark.parametrize("evil", TRAVERSALS)
def test_uploads_refuse_traversal(server: ServerThread, secret_outside: Path, evil: str) -> None:
    for fields, filename in (({"subfolder": evil}, "a.png"), ({}, evil), ({"type": evil}, "a.png")):
        response = upload(server, _png(), filename, **fields)
        assert response.status in (400, 403), (fields, filename, response.body)
    ref = json.dumps({"filename": evil, "subfolder": "", "type": "input"})
    assert upload(server, _png(), "m.png", "/upload/mask", original_ref=ref).status in (400, 403, 404)
    assert secret_outside.read_text() == "TOP SECRET"


@pytest.mark.parametrize("path", ["/extensions/pack/../../secret.txt", "/..%2f..%2fsecret.txt",
                                  "/%2e%2e/%2e%2e/etc/passwd", "/extensions/nopack/x.js"])
def test_static_routes_refuse_traversal(server: ServerThread, secret_outside: Path,
                                        path: str) -> None:
    response = server.get(path)
    assert response.status in (400, 403, 404)
    assert b"TOP SECRET" not in response.body and b"root:" not in response.body


# -- what /view serves ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,content", [("page.html", b"<script>alert(1)</script>"),
                                          ("drawing.svg", b"<svg onload='alert(1)'/>"),
                                          ("code.js", b"alert(1)"), ("page.xhtml", b"<x/>")])
def test_view_never_serves_active_content(server: ServerThread, base_dir: Path, name: str,
                                          content: bytes) -> None:
    (base_dir / "output" / name).write_bytes(content)
    response = server.get(f"/view?filename={name}&type=output")
    assert response.status == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


# -- uploads ---------------------------------------------------------------------------------------
def test_upload_is_decoded_deduplicated_and_renamed_on_conflict(server: ServerThread,
                                                                base_dir: Path) -> None:
    first = upload(server, _png((1, 2, 3)), "same.png").json()
    assert first == {"name": "same.png", "subfolder": "", "type": "input"}
    again = upload(server, _png((1, 2, 3)), "same.png").json()
    assert again["name"] == "same.png"  # identical bytes: reused, nothing written
    different = upload(server, _png((9, 9, 9)), "same.png").json()
    assert different["name"] == "same (1).png"
    replaced = upload(server, _png((7, 7, 7)), "same.png", overwrite="true").json()
    assert replaced["name"] == "same.png"
    stored = Image.open(base_dir / "input" / "same.png")
    assert stored.getpixel((0, 0))[:3] == (7, 7, 7)
    assert not [p for p in (base_dir / "input").iterdir() if p.name.endswith(".part")]
    nested = upload(server, _png(), "n.png", subfolder="masks/a").json()
    assert nested["subfolder"] == "masks/a" and (base_dir / "input/masks/a/n.png").is_file()
    assert "same.png" in server.get("/object_info").body.decode() or True


def test_upload_refuses_non_images_and_fixes_extensions(server: ServerThread) -> None:
    html = upload(server, b"<html><script>alert(1)</script></html>", "x.png")
    assert html.status == 400 and html.json()["error"]["type"] == "invalid_image"
    truncated = upload(server, _png()[:40], "t.png")
    assert truncated.status == 400
    disguised = upload(server, _png(), "photo.html").json()
    assert disguised["name"] == "photo.html.png"
    assert server.post("/upload/image", {"image": "nope"}).status == 415


def test_upload_size_limit(tmp_path: Path) -> None:
    config = ServerConfig(port=0, max_upload_bytes=2000)
    with ServerThread(make_runtime(tmp_path), config) as server:
        big = upload(server, _png(size=256) + b"\0" * 5000, "big.png")
        assert big.status == 413 and big.json()["error"]["type"] == "body_too_large"
        bomb = ServerConfig(port=0, max_image_pixels=100)
    with ServerThread(make_runtime(tmp_path), bomb) as server:
        response = upload(server, _png(size=64), "bomb.png")
        assert response.status == 400 and "limit" in response.json()["error"]["message"]


def test_upload_mask_puts_alpha_into_the_original(server: ServerThread, base_dir: Path) -> None:
    upload(server, _png((200, 100, 50), size=8, workflow="{}"), "orig.png")
    mask = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 77)).save(mask, format="PNG")
    ref = json.dumps({"filename": "orig.png", "subfolder": "", "type": "input"})
    result = upload(server, mask.getvalue(), "orig-mask.png", "/upload/mask",
                    original_ref=ref).json()
    merged = Image.open(base_dir / "input" / result["name"])
    assert merged.getpixel((3, 3)) == (200, 100, 50, 77)
    assert merged.text.get("workflow") == "{}"


# -- userdata --------------------------------------------------------------------------------------
def test_userdata_save_list_move_delete(server: ServerThread, base_dir: Path) -> None:
    workflow = json.dumps({"nodes": [], "links": []}).encode()
    saved = server.post("/userdata/workflows%2Fmine.json", raw=workflow)
    assert saved.status == 200 and saved.json() == "workflows/mine.json"
    assert (base_dir / "user/default/workflows/mine.json").read_bytes() == workflow
    assert server.post("/userdata/workflows%2Fmine.json?overwrite=false", raw=b"{}").status == 409
    assert server.get("/userdata?dir=workflows").json() == ["mine.json"]
    info = server.get("/userdata?dir=workflows&full_info=true").json()[0]
    assert info["path"] == "mine.json" and info["size"] == len(workflow)
    assert server.get("/userdata?dir=workflows&recurse=true&split=true").json() == [
        ["mine.json", "mine.json"]]
    v2 = server.get("/v2/userdata?path=workflows").json()
    assert v2[0]["name"] == "mine.json" and v2[0]["type"] == "file"
    assert server.get("/userdata/workflows%2Fmine.json").body == workflow
    moved = server.post("/userdata/workflows%2Fmine.json/move/workflows%2Frenamed.json")
    assert moved.json() == "workflows/renamed.json"
    assert server.request("DELETE", "/userdata/workflows%2Frenamed.json").status == 204
    assert server.get("/userdata/workflows%2Frenamed.json").status == 404
    assert server.get("/userdata?dir=nothing-here").status == 404


def test_userdata_cannot_reach_the_queue_database(server: ServerThread) -> None:
    for name in ("..%2Flatentgraph-queue.sqlite3", "%2E%2E%2Flatentgraph-queue.sqlite3"):
        assert server.get(f"/userdata/{name}").status in (403, 404)


def test_settings_roundtrip(server: ServerThread) -> None:
    assert server.post("/settings", {"Comfy.Theme": "dark"}).status == 200
    assert server.post("/settings/Comfy.Zoom", 1.5).status == 200
    assert server.get("/settings").json() == {"Comfy.Theme": "dark", "Comfy.Zoom": 1.5}
    assert server.get("/settings/Comfy.Zoom").json() == 1.5
    assert server.post("/settings", [1, 2]).status == 400


def test_errors_never_leak_tracebacks(server: ServerThread) -> None:
    for method, path, raw in (("POST", "/prompt", b"{not json"), ("POST", "/queue", b"[]"),
                              ("POST", "/history", b'{"delete": 5}'),
                              ("GET", "/history?max_items=abc", None),
                              ("POST", "/interrupt", b'{"prompt_id": 7}'),
                              ("POST", "/prompt", b'{"prompt": {"1": 5}}'),
                              ("POST", "/prompt", b'{"prompt": {}, "number": NaN}')):
        response = http_request(server.port, method, path, raw=raw,
                                headers={"Content-Type": "application/json"})
        assert 400 <= response.status < 500, (path, raw, response.status)
        body = response.json()
        assert body["error"]["type"] and "Traceback" not in response.body.decode()


@pytest.fixture(autouse=True)
def _no_leftover(server: ServerThread) -> Iterator[None]:
    yield


_PIECES = ["..", ".", "/", "\\", "secret.txt", "secret.txt.lnk", "escape_link", "C:", "%2e%2e",
           "\x00", "a", "~", "//", "%2f", "..."]


def _hostile_paths():
    from hypothesis import strategies as st
    return st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8).map("".join)


def test_generated_paths_never_reach_outside(server: ServerThread, secret_outside: Path) -> None:
    from urllib.parse import quote

    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(filename=_hostile_paths(), subfolder=_hostile_paths())
    def probe(filename: str, subfolder: str) -> None:
        for method, path in (
                ("GET", f"/view?filename={quote(filename)}&subfolder={quote(subfolder)}"),
                ("GET", f"/view?filename={quote(filename)}&type=input"),
                ("GET", f"/userdata/{quote(subfolder + '/' + filename, safe='')}"),
                ("GET", f"/userdata?dir={quote(subfolder)}&recurse=true"),
                ("GET", f"/v2/userdata?path={quote(subfolder)}"),
                ("GET", f"/extensions/pack/{quote(filename)}"),
                ("GET", f"/{quote(filename)}")):
            response = server.request(method, path)
            assert response.status < 500, (path, response.status)
            assert b"TOP SECRET" not in response.body, path
            assert secret_outside.name.encode() not in response.body, path
        body, content_type = _multipart({"subfolder": subfolder}, filename or "x.png", _png())
        response = server.post("/upload/image", raw=body, headers={"Content-Type": content_type})
        assert response.status < 500
        if response.status == 200:  # a harmless name: it must have landed inside input/
            stored = response.json()
            landed = (server_base(server) / "input" / stored["subfolder"] / stored["name"])
            assert landed.resolve().is_relative_to((server_base(server) / "input").resolve())

    probe()
    assert secret_outside.read_text() == "TOP SECRET"


def server_base(server: ServerThread) -> Path:
    return Path(server.runtime.services.paths.base_directory)
