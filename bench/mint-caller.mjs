#!/usr/bin/env node
// Mints a caller (application user) JWT for the benchmark, with node:crypto only.
// Usage: node mint-caller.mjs <HS256|RS256|ES256> <hs-secret | path to PEM private key> <sub> [permission ...]
// Env: CALLER_ISSUER, CALLER_AUDIENCE (both optional), CALLER_NAME (default "Bench User"),
//      CALLER_TTL seconds (default 7200).
import { createHmac, createSign } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [alg, key, sub, ...permissions] = process.argv.slice(2);
if (!['HS256', 'RS256', 'ES256'].includes(alg) || !key || !sub) {
  process.stderr.write('usage: mint-caller.mjs <HS256|RS256|ES256> <secret|private.pem> <sub> [permission ...]\n');
  process.exit(2);
}
const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const payload = {
  sub,
  name: process.env.CALLER_NAME ?? 'Bench User',
  permissions,
  iat: now,
  exp: now + Number(process.env.CALLER_TTL ?? 7200),
};
if (process.env.CALLER_ISSUER) payload.iss = process.env.CALLER_ISSUER;
if (process.env.CALLER_AUDIENCE) payload.aud = process.env.CALLER_AUDIENCE;
const signingInput = `${b64({ alg, typ: 'JWT' })}.${b64(payload)}`;
const sign = () => {
  if (alg === 'HS256') return createHmac('sha256', key).update(signingInput).digest();
  // JWS wants ECDSA signatures as r || s (IEEE P1363), not DER.
  const options = alg === 'ES256' ? { dsaEncoding: 'ieee-p1363' } : {};
  return createSign('SHA256').update(signingInput).sign({ key: readFileSync(key), ...options });
};
const signature = sign().toString('base64url');
process.stdout.write(`${signingInput}.${signature}\n`);
