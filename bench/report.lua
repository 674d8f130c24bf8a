-- Shared wrk reporting: included by each scenario script, which sets
-- `scenario` first. done() prints one machine-readable line that
-- bench/run.sh parses:
--   BENCH scenario=<name> requests=<n> rps=<n> p50_ms=<n> p99_ms=<n> non2xx=<n> socket_errors=<n>
-- wrk counts a response as a status error when its status is 400 or more;
-- the service answers these routes with 2xx or 4xx/5xx only, so that count
-- is the number of non-2xx responses.

function done(summary, latency, _)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "BENCH scenario=%s requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d socket_errors=%d\n",
      scenario,
      summary.requests,
      summary.requests / seconds,
      latency:percentile(50) / 1000,
      latency:percentile(99) / 1000,
      e.status,
      e.connect + e.read + e.write + e.timeout))
end
