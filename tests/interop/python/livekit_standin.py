#!/usr/bin/env python3
"""A LiveKit server stand-in for the rotation tests: it holds keys exactly as livekit-server does.

livekit-server (livekit/livekit: cmd/server/main.go, pkg/config/config.go) reads its keys once, at start,
from `--key-file`; it never reloads them. Outside `--dev` it refuses to start when the key file has any
permission bit for "other" or when a secret is shorter than 32 characters. Its server API (Twirp) answers
401 to a token signed with a key it does not hold, and its join path validates the access token the same
way. This stand-in does the same, and checks every token with the official SDK's verifier (PyPI
`livekit-api`, `livekit.api.TokenVerifier`):

  POST /twirp/livekit.RoomService/ListRooms   Bearer token with video.roomList   -> 200 {"rooms": []}
                                              unknown key / bad signature / expired -> 401
                                              valid token without roomList          -> 403
  GET  /rtc/validate?access_token=<token>     a join token (video.roomJoin, video.room) -> 200 "success",
                                              else 401 (livekit-server's own pre-join validation route)
  GET  /standin/keys                          the key ids loaded at start (test introspection only)

A "restart" is a new process: the test kills this one and starts another on the same port, which reads the
key file again, as a livekit-server pod restarted by a rollout would.

usage: livekit_standin.py --key-file PATH [--host 127.0.0.1] [--port 0]
Prints `listening on HOST:PORT` on stdout once it serves. Exit 1 with livekit-server's message when the
key file is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from interop_venv import reexec_in_venv

reexec_in_venv(__file__)

try:
    import jwt  # PyJWT, a dependency of livekit-api
    from livekit import api
except ImportError as e:  # pragma: no cover - environment problem
    sys.stderr.write(f"livekit_standin.py: livekit-api is not installed ({e}); run ./scripts/test-deps.sh\n")
    sys.exit(3)

MIN_SECRET_LENGTH = 32  # livekit-server: "secret is too short, should be at least 32 characters for security"


def _scalar(text: str) -> str:
    """One YAML scalar as serde_yaml writes keys.yaml: plain, 'single' or "double" quoted."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text)
    return text


def load_keys(path: str) -> dict[str, str]:
    """Reads the key file the way livekit-server does at start, with its two refusals."""
    mode = os.stat(path).st_mode
    if mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH):
        raise SystemExit(f"key file others permissions must be set to 0 ({path}: {stat.filemode(mode)})")
    keys: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, secret = line.partition(":")
            if not sep:
                raise SystemExit(f"key file line {line_no} is not `key: secret`")
            key, secret = _scalar(key), _scalar(secret)
            if len(secret) < MIN_SECRET_LENGTH:
                raise SystemExit("secret is too short, should be at least 32 characters for security")
            keys[key] = secret
    if not keys:
        raise SystemExit("one of key-file or keys must be provided")
    return keys


def verify(keys: dict[str, str], token: str):
    """The SDK's verdict on a token with the loaded keys: its claims, or None."""
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    secret = keys.get(issuer) if isinstance(issuer, str) else None
    if secret is None:
        return None
    try:
        return api.TokenVerifier(issuer, secret).verify(token)
    except Exception:  # every rejection the SDK raises means 401
        return None


def make_handler(keys: dict[str, str]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: tokens must not reach any log
            pass

        def reply(self, code: int, body: dict | str) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if urlparse(self.path).path != "/twirp/livekit.RoomService/ListRooms":
                return self.reply(404, {"code": "bad_route", "msg": "no handler for path"})
            auth = self.headers.get("Authorization", "")
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            claims = verify(keys, token) if token else None
            if claims is None:
                return self.reply(401, {"code": "unauthenticated", "msg": "invalid token"})
            if not (claims.video and claims.video.room_list):
                return self.reply(403, {"code": "permission_denied", "msg": "permissions denied"})
            return self.reply(200, {"rooms": []})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/standin/keys":
                return self.reply(200, {"keys": sorted(keys)})
            if url.path == "/rtc/validate":
                token = (parse_qs(url.query).get("access_token") or [""])[0]
                claims = verify(keys, token) if token else None
                if claims is None or not (claims.video and claims.video.room_join and claims.video.room):
                    return self.reply(401, "invalid token")
                return self.reply(200, "success")
            return self.reply(404, "404 page not found")

    return Handler


def _exit_with_parent(parent: int) -> None:
    """A test that dies (a failed assertion ends its process) must not leave this server behind."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    keys = load_keys(args.key_file)  # once, at start, as livekit-server does
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((args.host, args.port), make_handler(keys))
    host, port = server.server_address[:2]
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
