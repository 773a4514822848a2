#!/usr/bin/env node
// Verifies LiveKit access tokens with the official npm SDK (`livekit-server-sdk`, `TokenVerifier`).
//
// Protocol (shared with ../python/verify.py):
//   stdin:  JSON lines, each {"apiKey": "...", "apiSecret": "...", "token": "..."}; blank lines are skipped.
//   stdout: one JSON line per input line, in input order:
//             {"ok": true,  "claims": <the payload exactly as TokenVerifier.verify() returns it>, "exp": <exp>}
//             {"ok": false, "error": "<jose error code>: <message>"}
//   exit:   0 after the last line, whatever the tokens were; 2 only for broken input (a line that is not a
//           JSON object with string apiKey/apiSecret/token), after the results of the lines before it.
//   `verify.mjs --version` prints "livekit-server-sdk <version>" (and so checks that the SDK loads).
//
// The SDK verifies HS256 with the API secret, checks `iss` == apiKey, requires `exp`, honours `nbf`, and
// applies its default clock tolerance (10 s in 2.19.x). We pass no options: the defaults are what users get.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { TokenVerifier } from 'livekit-server-sdk';

if (process.argv[2] === '--version') {
  // The package exports no ./package.json; it sits beside dist/, where the import resolves to.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.resolve('livekit-server-sdk')), 'utf8'));
  process.stdout.write(`${pkg.name} ${pkg.version}\n`);
  process.exit(0);
}

function fail(lineNo, why) {
  process.stderr.write(`verify.mjs: broken input on line ${lineNo}: ${why}\n`);
  process.exitCode = 2;
}

function describe(err) {
  if (err && typeof err === 'object') {
    const message = err.message ?? String(err);
    return err.code ? `${err.code}: ${message}` : message;
  }
  return String(err);
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
let lineNo = 0;
for await (const line of lines) {
  lineNo += 1;
  if (line.trim() === '') continue;
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    fail(lineNo, `not JSON (${e.message})`);
    break;
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    fail(lineNo, 'not a JSON object');
    break;
  }
  const missing = ['apiKey', 'apiSecret', 'token'].filter((k) => typeof req[k] !== 'string');
  if (missing.length > 0) {
    fail(lineNo, `missing or non-string field(s): ${missing.join(', ')}`);
    break;
  }
  let out;
  try {
    const claims = await new TokenVerifier(req.apiKey, req.apiSecret).verify(req.token);
    out = { ok: true, claims, exp: claims.exp ?? null };
  } catch (e) {
    out = { ok: false, error: describe(e) };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
lines.close();
