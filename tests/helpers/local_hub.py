"""A small Hugging Face Hub on 127.0.0.1, for testing publishing and downloading with the real client.

It answers the endpoints that ``huggingface_hub`` (and through it transformers, PEFT and ``evaluate``) use to
create repos, commit files and download them, with the Hub's response shapes and error headers:

==========================================================  ===========================================
``POST /api/repos/create``                                  create a model / dataset / space repo (409 if it exists)
``POST /api/validate-yaml``                                 README front matter check run before a commit
``POST /api/{type}s/{repo}/preupload/{rev}``                upload mode of each file (always ``regular``)
``POST /api/{type}s/{repo}/commit/{rev}``                   NDJSON commit, applied atomically
``POST /api/{type}s/{repo}/branch/{branch}``                create a branch
``GET  /api/{type}s/{repo}[/revision/{rev}]``               repo info (sha, siblings, cardData)
``GET  /api/{type}s/{repo}/tree/{rev}[/{path}]``            tree listing (``recursive`` supported)
``POST /api/{type}s/{repo}/paths-info/{rev}``               info on given paths
``GET  /api/whoami-v2``                                     the token's user
``GET|HEAD /[{type}s/]{repo}/resolve/{rev}/{path}``         file download with ``X-Repo-Commit`` / ``ETag``
==========================================================  ===========================================

Every file is committed as a regular (base64) file, so no LFS or Xet storage is needed. Commits are all or nothing:
operations are applied to a copy of the branch and the branch moves only when the whole commit was read and
applied. :meth:`LocalHub.fail_next_commit_after` injects a failure part way through a commit's files, which is how
tests check that an interrupted upload leaves the remote repo unchanged.

Writes need ``Authorization: Bearer <token>`` when the hub was given a token. The request log records method, path
and status only, never headers, so a token cannot leak through it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
_RESOLVE_PREFIX = {"models": "model", "datasets": "dataset", "spaces": "space"}


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob, which is what the Hub reports as a regular file's ``oid``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, bytes]
    created_at: float = field(default_factory=time.time)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


class HubError(Exception):
    """An error answered with the Hub's status code and ``X-Error-Code`` header."""

    def __init__(self, status: int, message: str, error_code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.error_code = status, message, error_code
        self.extra = extra or {}


class InjectedFailure(HubError):
    pass


class LocalHub:
    """An in-memory Hub served over HTTP on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(self, token: str | None = None, user: str = "user", host: str = "127.0.0.1", port: int = 0):
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.request_log: list[str] = []
        self._lock = threading.Lock()
        self._fail_after_files: int | None = None
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- test hooks -------------------------------------------------------------------------------------------
    def fail_next_commit_after(self, n_files: int) -> None:
        """Make the next commit fail (HTTP 500) once ``n_files`` of its files have been received."""
        self._fail_after_files = n_files

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` ({} when the repo or revision does not exist)."""
        repo = self.repos.get((repo_type, repo_id))
        commit = repo.resolve(revision) if repo else None
        return dict(commit.files) if commit else {}

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        repo = self.repos.get((repo_type, repo_id))
        return len(repo.commits) if repo else 0

    # ----- operations -------------------------------------------------------------------------------------------
    def check_write_token(self, authorization: str | None) -> None:
        if self.token is None:
            return
        if authorization != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def get_commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit

    def create_repo(self, payload: dict) -> dict:
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        namespace = payload.get("organization") or self.user
        repo_id = f"{namespace}/{payload['name']}"
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                existing = self.repos[(repo_type, repo_id)]
                raise HubError(409, "You already created this repo", extra={"url": self._repo_url(existing)})
            repo = Repo(repo_type, repo_id, payload.get("visibility") == "private", payload.get("sdk"))
            initial = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
            if repo_type == "space":
                initial["README.md"] = f"---\nsdk: {repo.sdk}\n---\n".encode()
            self._add_commit(repo, "main", "initial commit", initial)
            self.repos[(repo_type, repo_id)] = repo
        return {"url": self._repo_url(repo), "name": repo_id, "id": repo_id}

    def _add_commit(self, repo: Repo, branch: str, message: str, files: dict[str, bytes]) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(json.dumps([parent, message, time.time_ns(), sorted(files)]).encode())
        for path in sorted(files):
            digest.update(git_blob_sha1(files[path]).encode())
        commit = Commit(digest.hexdigest(), parent, message, files)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def commit(self, repo: Repo, revision: str, body_lines) -> dict:
        """Apply an NDJSON commit all at once; any error leaves the branch where it was."""
        branch = unquote(revision)
        if branch not in repo.branches:
            raise HubError(404, f"Branch {branch} not found", "RevisionNotFound")
        files = dict(repo.commits[repo.branches[branch]].files)
        header: dict = {}
        received = 0
        for line in body_lines:
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if self._fail_after_files is not None and received >= self._fail_after_files:
                    self._fail_after_files = None
                    raise InjectedFailure(500, "Injected failure in the middle of the upload")
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
                received += 1
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"File {value['path']} not found", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            elif key == "lfsFile":
                raise HubError(400, "This local hub stores regular files only; preupload never asks for LFS")
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        with self._lock:
            parent = header.get("parentCommit")
            if parent and parent != repo.branches[branch]:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            commit = self._add_commit(repo, branch, header.get("summary", ""), files)
        return {
            "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}",
            "commitOid": commit.oid,
            "pullRequestUrl": None,
        }

    def create_branch(self, repo: Repo, branch: str, payload: dict) -> dict:
        with self._lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            start = self.get_commit(repo, payload.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        return {}

    def preupload(self, repo: Repo, revision: str, payload: dict) -> dict:
        commit = repo.resolve(revision)
        existing = commit.files if commit else {}
        return {
            "files": [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(existing[f["path"]]) if f["path"] in existing else None,
                }
                for f in payload.get("files", [])
            ]
        }

    def repo_info(self, repo: Repo, revision: str) -> dict:
        commit = self.get_commit(repo, revision)
        info = {
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created_at)),
            "siblings": [
                {"rfilename": path, "size": len(data)} for path, data in sorted(commit.files.items())
            ],
            "tags": [],
        }
        readme = commit.files.get("README.md")
        if readme is not None:
            match = re.match(r"^---\n(.*?)\n---", readme.decode("utf-8", "replace"), re.DOTALL)
            if match:
                info["cardData"] = yaml.safe_load(match.group(1)) or {}
        if repo.repo_type == "space":
            info["sdk"] = repo.sdk
            info["runtime"] = {"stage": "NO_APP_FILE", "hardware": {"current": None, "requested": None}}
        return info

    def tree(self, repo: Repo, revision: str, path: str, recursive: bool) -> list[dict]:
        commit = self.get_commit(repo, revision)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for file_path, data in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                entries.setdefault(folder, {"type": "directory", "oid": "0" * 40, "path": folder})
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                entries[file_path] = {
                    "type": "file",
                    "oid": git_blob_sha1(data),
                    "size": len(data),
                    "path": file_path,
                }
        if prefix and not entries:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        return list(entries.values())

    def paths_info(self, repo: Repo, revision: str, paths: list[str]) -> list[dict]:
        commit = self.get_commit(repo, revision)
        out = []
        for path in paths:
            if path in commit.files:
                data = commit.files[path]
                out.append({"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path})
            elif any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                out.append({"type": "directory", "oid": "0" * 40, "path": path})
        return out

    def _repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self.endpoint}/{prefix}{repo.repo_id}"


def client_env(
    hub: LocalHub, hf_home: str | os.PathLike, token: str | None = None, base: dict | None = None
) -> dict:
    """Environment for a subprocess whose Hugging Face clients should talk to ``hub``.

    ``HF_ENDPOINT`` is read when huggingface_hub (and evaluate) are imported, so a client pointed at the local hub
    must be a fresh process; ``HF_HOME`` isolates its caches and login from the user's.
    """
    env = dict(os.environ if base is None else base)
    for name in (
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "HF_EVALUATE_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
    ):
        env.pop(name, None)
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1")
    if token is not None:
        env["HF_TOKEN"] = token
    return env


_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(/.*)?$")
_RESOLVE = re.compile(r"^/(?:(models|datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def _make_handler(hub: LocalHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            pass  # the hub keeps its own log without headers; stderr stays quiet in tests

        # ----- plumbing -----
        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head_only: bool = False):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(body)
            hub.request_log.append(f"{self.command} {urlsplit(self.path).path} {status}")

        def _json(self, status: int, payload) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _error(self, err: HubError) -> None:
            headers = {"Content-Type": "application/json", "X-Error-Message": err.message}
            if err.error_code:
                headers["X-Error-Code"] = err.error_code
            body = json.dumps({"error": err.message, **err.extra}).encode()
            self._send(err.status, body, headers, head_only=self.command == "HEAD")

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _dispatch(self, handler) -> None:
            try:
                handler()
            except HubError as err:
                self._error(err)
            except (KeyError, ValueError) as err:
                self._error(HubError(400, f"Bad request: {err}"))

        def do_GET(self):
            self._dispatch(lambda: self._get(head_only=False))

        def do_HEAD(self):
            self._dispatch(lambda: self._get(head_only=True))

        def do_POST(self):
            self._dispatch(self._post)

        # ----- routes -----
        def _get(self, head_only: bool) -> None:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            if path == "/api/whoami-v2":
                if hub.token is not None:
                    hub.check_write_token(self.headers.get("Authorization"))
                self._json(
                    200, {"type": "user", "name": hub.user, "orgs": [], "auth": {"type": "access_token"}}
                )
                return
            resolve = _RESOLVE.match(path)
            if resolve:
                prefix, repo_id, revision, file_path = resolve.groups()
                repo = hub.get_repo(_RESOLVE_PREFIX.get(prefix, "model"), repo_id)
                commit = hub.get_commit(repo, revision)
                if file_path not in commit.files:
                    raise HubError(404, f"Entry {file_path} not found", "EntryNotFound")
                data = commit.files[file_path]
                etag = f'"{git_blob_sha1(data)}"'
                headers = {
                    "X-Repo-Commit": commit.oid,
                    "ETag": etag,
                    "Content-Type": "application/octet-stream",
                }
                status, byte_range = 200, self.headers.get("Range")
                if byte_range and not head_only:
                    start = int(byte_range.removeprefix("bytes=").split("-")[0] or 0)
                    data, status = data[start:], 206
                    headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{start + len(data)}"
                self._send(status, data, headers, head_only=head_only)
                return
            repo, rest = self._repo_route(path)
            if rest == "" or rest.startswith("/revision/"):
                revision = rest.removeprefix("/revision/") or "main"
                self._json(200, hub.repo_info(repo, revision))
            elif rest.startswith("/tree/"):
                revision, _, sub_path = rest.removeprefix("/tree/").partition("/")
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                self._json(200, hub.tree(repo, revision, sub_path, recursive))
            else:
                raise HubError(404, f"No route for {path}")

        def _repo_route(self, path: str):
            """``/api/{models,datasets,spaces}/<repo_id><rest>`` -> (the repo, rest)."""
            api = _API_REPO.match(path)
            if not api:
                raise HubError(404, f"No route for {path}")
            plural, repo_id, rest = api.groups()
            return hub.get_repo(plural[:-1], repo_id), rest or ""

        def _post(self) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            body = self._body()
            if path == "/api/validate-yaml":
                content = json.loads(body).get("content", "")
                match = re.match(r"^---\n(.*?)\n---", content, re.DOTALL)
                try:
                    if match:
                        yaml.safe_load(match.group(1))
                except yaml.YAMLError as err:
                    raise HubError(400, f"Invalid YAML in README.md: {err}") from err
                self._json(200, {"errors": [], "warnings": []})
                return
            hub.check_write_token(self.headers.get("Authorization"))
            if path == "/api/repos/create":
                self._json(200, hub.create_repo(json.loads(body)))
                return
            repo, rest = self._repo_route(path)
            if rest.startswith("/preupload/"):
                self._json(200, hub.preupload(repo, rest.removeprefix("/preupload/"), json.loads(body)))
            elif rest.startswith("/commit/"):
                self._json(200, hub.commit(repo, rest.removeprefix("/commit/"), body.decode().splitlines()))
            elif rest.startswith("/branch/"):
                self._json(
                    200, hub.create_branch(repo, rest.removeprefix("/branch/"), json.loads(body or b"{}"))
                )
            elif rest.startswith("/paths-info/"):
                form = parse_qs(body.decode())
                paths = json.loads(body).get("paths", []) if body.startswith(b"{") else form.get("paths", [])
                self._json(200, hub.paths_info(repo, rest.removeprefix("/paths-info/"), paths))
            else:
                raise HubError(404, f"No route for {path}")

    return Handler


def main() -> None:
    """Serve a local hub until interrupted: ``python tests/helpers/local_hub.py [port] [token]``."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    token = sys.argv[2] if len(sys.argv) > 2 else None
    with LocalHub(token=token, port=port) as hub:
        print(f"local hub at {hub.endpoint} (HF_ENDPOINT={hub.endpoint})", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
