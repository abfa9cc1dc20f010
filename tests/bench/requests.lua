-- wrk script of the bench (tests/bench/wrk.py): rotates over the requests listed in the
-- file named by BENCH_REQUESTS (one a line: METHOD <tab> PATH <tab> BODY, BODY may be
-- empty), each sent with BENCH_AUTHORIZATION as its Authorization header; counts answers
-- other than 2xx (wrk itself counts only >= 400) and prints its figures as one JSON line
-- after "BENCH_RESULT ".

local requests = {}
local index = 0
non2xx = 0  -- global: read by done() through thread:get

local function load()
  local file = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  local headers = {
    ["Authorization"] = os.getenv("BENCH_AUTHORIZATION"),
    ["Content-Type"] = "application/json",
  }
  for line in file:lines() do
    local method, path, body = line:match("^(%u+)\t([^\t]+)\t(.*)$")
    if body == "" then body = nil end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  file:close()
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  load()
  -- Threads start at different places so they do not ask for the same record in step.
  index = math.random(#requests) - 1
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, _)
  local other = 0
  for _, thread in ipairs(threads) do
    other = other + thread:get("non2xx")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"socket_errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout, other))
end
