-- wrk script for scripts/bench.
--
-- BENCH_TARGET_URL set: send proxy-style absolute-form requests
--   (GET http://127.0.0.1:ORIGIN/1k HTTP/1.1) to the proxy given on wrk's
--   command line. Unset: plain origin-form requests to wrk's URL.
-- At the end, print one machine-readable line for the bench to parse:
--   BENCH_RESULT requests=N duration_us=N connect=N read=N write=N status=N timeout=N

local target = os.getenv("BENCH_TARGET_URL")

if target ~= nil and target ~= "" then
  local hostport = target:match("^%a+://([^/]+)")
  wrk.path = target
  wrk.headers["Host"] = hostport
end
wrk.headers["Connection"] = "keep-alive"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
