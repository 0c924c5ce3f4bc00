-- wrk script for bench/serve/latency.sh: GETs WRK_PATH with the bearer token in
-- CURATE_TOKEN; when WRK_MAX_ID is set, WRK_PATH is a format string ("/v1/runs/%d") given
-- a uniformly random id from 1 to WRK_MAX_ID per request. At the end prints one line,
-- "RESULT {json}", with requests, non-2xx responses, socket errors and latency
-- percentiles in microseconds.
local token = os.getenv("CURATE_TOKEN") or error("CURATE_TOKEN is not set")
local path = os.getenv("WRK_PATH") or "/v1/runs"
local max_id = tonumber(os.getenv("WRK_MAX_ID") or "0")
wrk.headers["Authorization"] = "Bearer " .. token

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

function init(args)
  math.randomseed(7919 * (thread_no or 1) + os.time())
end

function request()
  if max_id > 0 then
    return wrk.format("GET", string.format(path, math.random(1, max_id)))
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"mean_us": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
