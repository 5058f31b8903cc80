"""A small Hugging Face Hub on 127.0.0.1, for tests of hub downloads and uploads (never the real hub).

It speaks the part of the hub's HTTP API that ``huggingface_hub`` uses for ``snapshot_download``
(model info, the file tree, file downloads by revision) and for ``create_repo`` +
``upload_folder`` (repo creation, the pre-upload check, which answers "regular" for every file so
the content travels in the commit, and the NDJSON commit itself).  Repositories live in memory:

    with HubStub() as hub:
        hub.add_repo("owner/name", {"config.json": b"..."})   # something to download
        os.environ["HF_ENDPOINT"] = hub.url
        ...
        hub.repos["owner/name"]   # {path: bytes} after an upload
        hub.created               # repo ids created, in order (with their private flag)
        hub.requests              # (method, path) of every request
        hub.cards                 # the parsed front matter of every README.md validated before an upload
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from loopback import LoopbackServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubStub(LoopbackServer):
    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.created: list[tuple[str, bool]] = []
        self.cards: list[dict] = []  # the front matter of every model card validated before an upload
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> None:
        self.repos[repo_id] = dict(files)

    # ------------------------------------------------------------------ the HTTP side
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status: int, body: bytes | dict | list, headers: dict | None = None, head=False):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if isinstance(body, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _route(self, method: str):
                path = unquote(urlsplit(self.path).path)
                with hub._lock:
                    hub.requests.append((method, path))
                body = self._body() if method == "POST" else b""
                parts = path.strip("/").split("/")
                # GET /api/models/{owner}/{name}/tree/{rev}  (the file list, recursive)
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree" and method == "GET":
                    files = hub.repos.get("/".join(parts[2:4]), {})
                    return self._send(200, [{"type": "file", "path": f, "size": len(b),
                                             "oid": hashlib.sha1(b).hexdigest()} for f, b in sorted(files.items())])
                # GET /api/models/{owner}/{name}[/revision/{rev}]
                if parts[:2] == ["api", "models"] and len(parts) >= 4 and method == "GET":
                    repo = "/".join(parts[2:4])
                    if repo not in hub.repos:
                        return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    files = hub.repos[repo]
                    return self._send(200, {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                                            "siblings": [{"rfilename": f} for f in sorted(files)]})
                # POST /api/validate-yaml  (the model card's front matter, checked before an upload)
                if parts[:2] == ["api", "validate-yaml"]:
                    import yaml

                    text = json.loads(body or b"{}").get("content", "")
                    front = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
                    try:
                        meta = yaml.safe_load(front)
                    except yaml.YAMLError as e:
                        return self._send(400, {"errors": [{"message": f"invalid YAML: {e}"}]})
                    if not isinstance(meta, dict):
                        return self._send(400, {"errors": [{"message": "no YAML front matter"}]})
                    hub.cards.append(meta)
                    return self._send(200, {"errors": [], "warnings": []})
                # POST /api/repos/create
                if parts[:3] == ["api", "repos", "create"]:
                    req = json.loads(body or b"{}")
                    repo = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                    hub.created.append((repo, bool(req.get("private")) or req.get("visibility") == "private"))
                    hub.repos.setdefault(repo, {})
                    return self._send(200, {"url": f"{hub.url}/{repo}", "name": repo})
                # POST /api/models/{owner}/{name}/preupload/{rev}
                if parts[:2] == ["api", "models"] and len(parts) >= 5 and parts[4] == "preupload":
                    req = json.loads(body or b"{}")
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False} for f in req.get("files", [])]})
                # POST /api/models/{owner}/{name}/commit/{rev}  (NDJSON: header, then one line per file)
                if parts[:2] == ["api", "models"] and len(parts) >= 5 and parts[4] == "commit":
                    repo = "/".join(parts[2:4])
                    if repo not in hub.repos:
                        return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item.get("key") == "file":
                            v = item["value"]
                            hub.repos[repo][v["path"]] = base64.b64decode(v["content"])
                    return self._send(200, {"commitUrl": f"{hub.url}/{repo}/commit/{COMMIT}", "commitOid": COMMIT,
                                            "success": True})
                # GET/HEAD /{owner}/{name}/resolve/{rev}/{file}
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, fname = "/".join(parts[:2]), "/".join(parts[4:])
                    data = hub.repos.get(repo, {}).get(fname)
                    if data is None:
                        return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"},
                                          head=method == "HEAD")
                    etag = '"' + hashlib.sha256(data).hexdigest() + '"'
                    return self._send(200, data, {"ETag": etag, "X-Repo-Commit": COMMIT}, head=method == "HEAD")
                return self._send(404, {"error": f"stub: no route for {method} {path}"})

            def do_GET(self):
                self._route("GET")

            def do_HEAD(self):
                self._route("HEAD")

            def do_POST(self):
                self._route("POST")

        return Handler
