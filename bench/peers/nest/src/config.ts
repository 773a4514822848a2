// Reads the same environment variables as livekit-sidecar (README "Environment variables"), so the
// benchmark configures both servers from one set of values.
import { readFileSync } from 'node:fs';
import type { Algorithm } from 'jsonwebtoken';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is required`);
  }
  return value;
}

function optionalInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

export interface PeerConfig {
  listenHost: string;
  listenPort: number;
  serverUrl: string;
  apiKey: string;
  apiSecret: string;
  defaultTtl: number;
  maxTtl: number;
  algorithms: Algorithm[];
  /** HS secret or PEM public key(s) the caller tokens are verified with. */
  callerKey: string | Buffer;
  issuer?: string;
  audiences?: string[];
}

export function loadConfig(): PeerConfig {
  const algorithms = required('SIDECAR_AUTH_ALGORITHMS')
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '') as Algorithm[];
  const hmac = algorithms.every((a) => a.startsWith('HS'));
  let callerKey: string | Buffer;
  if (hmac) {
    callerKey = required('SIDECAR_AUTH_HS_SECRET');
  } else if (process.env.SIDECAR_AUTH_PUBLIC_KEYS_FILE) {
    callerKey = readFileSync(process.env.SIDECAR_AUTH_PUBLIC_KEYS_FILE);
  } else {
    callerKey = required('SIDECAR_AUTH_PUBLIC_KEYS');
  }
  const audiences = process.env.SIDECAR_AUTH_AUDIENCES?.split(',').map((a) => a.trim()).filter((a) => a !== '');
  return {
    listenHost: process.env.PEER_HOST ?? '127.0.0.1',
    listenPort: optionalInt('PEER_PORT', 3101),
    serverUrl: required('LIVEKIT_SERVER_URL'),
    apiKey: required('LIVEKIT_API_KEY'),
    apiSecret: required('LIVEKIT_API_SECRET'),
    defaultTtl: optionalInt('LIVEKIT_DEFAULT_TOKEN_TTL', 3600),
    maxTtl: optionalInt('LIVEKIT_MAX_TOKEN_TTL', 86400),
    algorithms,
    callerKey,
    issuer: process.env.SIDECAR_AUTH_ISSUER || undefined,
    audiences: audiences && audiences.length > 0 ? audiences : undefined,
  };
}

export const PEER_CONFIG = Symbol('PEER_CONFIG');
