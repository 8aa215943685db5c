-- Requests for bench/http.py, configured by the environment:
--   BENCH_METHOD   GET or POST
--   BENCH_PATHS    space-separated paths; thread i requests path i (modulo their number)
--   BENCH_TOKENS   space-separated API tokens; thread i authenticates with token i (none: anonymous)
--   BENCH_BODIES   "|"-separated JSON bodies, sent in turn (POST)
--   BENCH_RUN      a run id: each POST carries a unique Idempotency-Key "<run>-<thread>-<n>"
--   BENCH_HEADERS  "|"-separated "Name: value" headers sent with every request (e.g. "Accept-Encoding: gzip")
-- Run with as many threads as connections (-t N -c N), so that each connection is one thread.
-- done() prints one line "BENCH_JSON {...}" that bench/http.py reads.

local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local function split(text, separator)
  local items = {}
  if text == nil or text == "" then
    return items
  end
  for item in string.gmatch(text, "([^" .. separator .. "]+)") do
    table.insert(items, item)
  end
  return items
end

function init(args)
  method = os.getenv("BENCH_METHOD") or "GET"
  local paths = split(os.getenv("BENCH_PATHS"), " ")
  local tokens = split(os.getenv("BENCH_TOKENS"), " ")
  bodies = split(os.getenv("BENCH_BODIES"), "|")
  run = os.getenv("BENCH_RUN") or "run"
  path = paths[index % #paths + 1]
  headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Token " .. tokens[index % #tokens + 1]
  end
  if #bodies > 0 then
    headers["Content-Type"] = "application/json"
  end
  for _, header in ipairs(split(os.getenv("BENCH_HEADERS"), "|")) do
    local name, value = string.match(header, "^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  sent = 0
  non2xx = 0
end

function request()
  sent = sent + 1
  local body = nil
  if #bodies > 0 then
    body = bodies[sent % #bodies + 1]
  end
  if method == "POST" then
    headers["Idempotency-Key"] = run .. "-" .. index .. "-" .. sent
  end
  return wrk.format(method, path, headers, body)
end

function response(status, response_headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if non2xx <= 3 then
      io.stderr:write("non-2xx " .. status .. ": " .. string.sub(body or "", 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, bad,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)
  ))
end
