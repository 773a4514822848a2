-- wrk script: POST /api/livekit/token with a caller token from $CALLER_TOKEN.
-- Prints one machine-readable line at the end: "RESULT <json>" (latencies in microseconds).
wrk.method = "POST"
wrk.path = "/api/livekit/token"
wrk.body = '{"roomId":"64f7b1234567890abcdef123","name":"Bench User","ttl":3600}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("CALLER_TOKEN"), "CALLER_TOKEN is not set")

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
