#!/usr/bin/env node
// Checks that a server answers POST /api/livekit/token correctly before it is measured:
//  - a caller with JOIN_CHANNEL gets 200 with exactly {token, identity, roomId, name, expiresAt},
//    the right values, and a token the official Node verifier (tests/interop/node/verify.mjs) accepts
//    with the expected claims;
//  - a tampered caller token gets 401;
//  - unless the third argument is `bare`: a caller without JOIN_CHANNEL gets 403 and a body without
//    roomId 400. The bare-stack baseline (bench/bare) only verifies and signs, so it has neither rule.
// Usage: node check.mjs <base url> <label> [bare]
// Env: CALLER_TOKEN, NOPERM_TOKEN, CALLER_SUB, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, VERIFY_MJS.
import { spawnSync } from 'node:child_process';

const [base, label, kind] = process.argv.slice(2);
const bare = kind === 'bare';
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const room = '64f7b1234567890abcdef123';
const ttl = 3600;
const problems = [];
const expect = (cond, what) => {
  if (!cond) problems.push(what);
};

async function post(token, body) {
  const res = await fetch(`${base}/api/livekit/token`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

const before = Date.now();
const ok = await post(env('CALLER_TOKEN'), { roomId: room, name: 'Bench User', ttl });
expect(ok.status === 200, `200 expected, got ${ok.status}: ${ok.text}`);
const body = ok.json ?? {};
expect(
  JSON.stringify(Object.keys(body).sort()) === JSON.stringify(['expiresAt', 'identity', 'name', 'roomId', 'token']),
  `response keys: ${Object.keys(body)}`,
);
expect(body.identity === env('CALLER_SUB'), `identity ${body.identity}`);
expect(body.roomId === room, `roomId ${body.roomId}`);
expect(body.name === 'Bench User', `name ${body.name}`);
expect(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(body.expiresAt ?? ''), `expiresAt format ${body.expiresAt}`);
const expiresAt = Date.parse(body.expiresAt);
expect(
  expiresAt >= before + (ttl - 5) * 1000 && expiresAt <= Date.now() + (ttl + 5) * 1000,
  `expiresAt ${body.expiresAt} is not now + ${ttl} s`,
);

if (typeof body.token === 'string') {
  const input = JSON.stringify({ apiKey: env('LIVEKIT_API_KEY'), apiSecret: env('LIVEKIT_API_SECRET'), token: body.token });
  const verified = spawnSync('node', [env('VERIFY_MJS')], { input: `${input}\n`, encoding: 'utf8', timeout: 30000 });
  const line = (verified.stdout ?? '').trim().split('\n')[0] ?? '';
  let result;
  try {
    result = JSON.parse(line);
  } catch {
    result = { ok: false, error: `verifier output ${JSON.stringify(line)} ${verified.stderr ?? ''}` };
  }
  expect(result.ok === true, `official verifier rejected the token: ${result.error}`);
  if (result.ok) {
    const c = result.claims;
    expect(c.sub === env('CALLER_SUB'), `token sub ${c.sub}`);
    expect(c.iss === env('LIVEKIT_API_KEY'), `token iss ${c.iss}`);
    expect(c.name === 'Bench User', `token name ${c.name}`);
    expect(c.exp - c.nbf === ttl, `token exp - nbf = ${c.exp - c.nbf}`);
    expect(Math.abs(c.exp * 1000 - expiresAt) <= 2000, `token exp ${c.exp} vs expiresAt ${body.expiresAt}`);
    const v = c.video ?? {};
    expect(
      v.room === room && v.roomJoin === true && v.canPublish === true && v.canSubscribe === true && v.canPublishData === true,
      `token video grant ${JSON.stringify(v)}`,
    );
  }
}

const caller = env('CALLER_TOKEN');
const tampered = caller.slice(0, -4) + (caller.endsWith('AAAA') ? 'BBBB' : 'AAAA');
const unauth = await post(tampered, { roomId: room });
expect(unauth.status === 401, `tampered caller token: 401 expected, got ${unauth.status}: ${unauth.text}`);
if (!bare) {
  const denied = await post(env('NOPERM_TOKEN'), { roomId: room });
  expect(denied.status === 403, `no JOIN_CHANNEL: 403 expected, got ${denied.status}: ${denied.text}`);
  const invalid = await post(caller, { ttl: 0 });
  expect(invalid.status === 400, `invalid body: 400 expected, got ${invalid.status}: ${invalid.text}`);
}

if (problems.length > 0) {
  process.stderr.write(`check ${label}: FAILED\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}
const refusals = bare ? '401' : '403, 401, 400';
process.stdout.write(`check ${label}: ok (200 with a token the official verifier accepts; ${refusals} as expected)\n`);
