#!/usr/bin/env python3
"""Verify LiveKit access tokens with the official PyPI SDK (`livekit-api`, `livekit.api.TokenVerifier`).

Protocol (shared with ../node/verify.mjs):
  stdin:  JSON lines, each {"apiKey": "...", "apiSecret": "...", "token": "..."}; blank lines are skipped.
  stdout: one JSON line per input line, in input order:
            {"ok": true,  "claims": <Claims.asdict()>, "exp": <exp>}
            {"ok": false, "error": "<exception class>: <message>"}
  exit:   0 after the last line, whatever the tokens were; 2 only for broken input (a line that is not a
          JSON object with string apiKey/apiSecret/token), after the results of the lines before it;
          3 when livekit-api is not installed (run ./scripts/test-deps.sh).
  `verify.py --version` prints "livekit-api <version>" (and so checks that the SDK loads).

What the SDK exposes (livekit-api 1.2.x): `TokenVerifier(api_key, api_secret, leeway=60 s).verify(token)`
checks the HS256 signature, `iss` == api_key, requires `exp` and honours `nbf` (through PyJWT), then returns
a `Claims` dataclass: identity (from `sub`), name, kind, metadata, attributes, sha256, room_preset,
room_config and the grants (video, sip, inference, observability, agent, agent_endpoint, agent_thread).
It does NOT expose `exp`, `nbf` or `iss`. `claims` below is `Claims.asdict()`, the SDK's own serialisation
into the token's field names (lowerCamelCase: roomJoin, canPublish, ...; None and "" values dropped),
so the keys line up with the Node SDK's payload; note `identity` where the JWT (and Node) say `sub`.
Note too that the SDK's VideoGrants default canPublish/canSubscribe/canPublishData to True, so a token
that omits them still reads as true here.
`exp` is therefore read from the same token with PyJWT (the SDK's own JWT library) only after the SDK
has accepted it, and reported next to the claims rather than inside them.
"""

import json
import sys

from interop_venv import reexec_in_venv

reexec_in_venv(__file__)

try:
    import jwt  # PyJWT, a dependency of livekit-api
    from livekit import api
except ImportError as e:  # pragma: no cover - environment problem, not a token problem
    sys.stderr.write(f"verify.py: livekit-api is not installed ({e}); run ./scripts/test-deps.sh\n")
    sys.exit(3)


def broken(line_no: int, why: str) -> None:
    sys.stderr.write(f"verify.py: broken input on line {line_no}: {why}\n")
    sys.stdout.flush()
    sys.exit(2)


def verify_one(req: dict) -> dict:
    try:
        claims = api.TokenVerifier(req["apiKey"], req["apiSecret"]).verify(req["token"])
    except Exception as e:  # every rejection the SDK can raise is a result, never a crash
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    # The SDK accepted the token; read the registered claims it does not expose.
    registered = jwt.decode(req["token"], options={"verify_signature": False})
    return {"ok": True, "claims": claims.asdict(), "exp": registered.get("exp")}


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from importlib.metadata import version

        print(f"livekit-api {version('livekit-api')}")
        return
    for line_no, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as e:
            broken(line_no, f"not JSON ({e})")
        if not isinstance(req, dict):
            broken(line_no, "not a JSON object")
        missing = [k for k in ("apiKey", "apiSecret", "token") if not isinstance(req.get(k), str)]
        if missing:
            broken(line_no, f"missing or non-string field(s): {', '.join(missing)}")
        sys.stdout.write(json.dumps(verify_one(req), separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
