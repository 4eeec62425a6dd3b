-- wrk script of bench/gateway.sh: POST /api/v1/notifications with a request_id nobody used
-- before (run nonce, wrk thread, per-thread counter), spread over the seeded users, and a
-- count of every status the gateway answered (only 202s are accepted notifications).
--
--   wrk ... -s bench/gateway.lua URL -- USERS_FILE API_KEY NONCE [PATH]
--
-- done() prints "STATUS <code> <count>" lines, "DURATION_US <n>", "ERRORS ..." and
-- "LATENCY_MS p50=.. p90=.. p99=.. p999=.. max=.." for the shell script to read.

local threads = {}
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local users = {}
local counter = 0
local nonce, path, headers
statuses = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then users[#users + 1] = line end
  end
  assert(#users > 0, "no users in " .. tostring(args[1]))
  nonce = args[3]
  path = args[4] or "/api/v1/notifications"
  headers = {
    ["Authorization"] = "Bearer " .. args[2],
    ["Content-Type"] = "application/json",
  }
end

function request()
  counter = counter + 1
  -- Threads start at different users so that the two do not walk the list in step.
  local user = users[(counter + thread_id * 7919) % #users + 1]
  local body = '{"notification_type":"email","user_id":"' .. user ..
    '","template_code":"welcome_email","variables":{"name":"Ada","link":"https://example.com/start"},' ..
    '"request_id":"' .. nonce .. '-' .. thread_id .. '-' .. counter ..
    '","priority":5,"metadata":{"campaign":"bench"}}'
  return wrk.format("POST", path, headers, body)
end

function response(status, response_headers, response_body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for status, n in pairs(counts) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  for status, n in pairs(totals) do
    io.write(string.format("STATUS %d %d\n", status, n))
  end
  io.write(string.format("DURATION_US %d\n", summary.duration))
  local e = summary.errors
  io.write(string.format("ERRORS connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  io.write(string.format("LATENCY_MS p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000))
end
