-- Shared by the bench scripts: print one machine-readable line when wrk finishes.
-- wrk counts a reply with status > 399 in errors.status ("non-2xx" for walkv's API,
-- which never redirects); connect/read/write/timeout are socket-level failures.
-- Latencies are in microseconds, over all completed requests.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
