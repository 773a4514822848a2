// Fetches credentials from a token endpoint with the official livekit-client `TokenSource.endpoint`,
// exactly as a browser app would, and prints what the client got:
//   node token-source.mjs '{"url": "...", "bearer": "...", "options": {"roomName": "...", ...}}'
// Output: {"ok": true, "serverUrl", "participantToken", "payload"} or {"ok": false, "error"}.
import { TokenSource, decodeTokenPayload } from 'livekit-client';

const { url, bearer, options } = JSON.parse(process.argv[2]);
const headers = bearer ? { Authorization: `Bearer ${bearer}` } : {};
try {
  const response = await TokenSource.endpoint(url, { headers }).fetch(options ?? {});
  process.stdout.write(
    JSON.stringify({
      ok: true,
      serverUrl: response.serverUrl,
      participantToken: response.participantToken,
      payload: decodeTokenPayload(response.participantToken),
    }) + '\n',
  );
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error?.message ?? error) }) + '\n');
}
