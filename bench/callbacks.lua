-- wrk script: a realistic mix of FoneStorm callbacks, each with its own call id.
--
-- Environment:
--   BENCH_RUN        run id, part of every inbound call id (default "r")
--   BENCH_POOL       outbound call ids cycle through bench-out-000000 .. POOL-1, calls the bridge
--                    "placed" (the benchmark seeds their command-ledger entries and place-call
--                    results) (default 20000)
--   BENCH_OUT_PREFIX prefix of outbound call ids (default "bench-out-"); a fresh prefix makes
--                    them calls the bridge never placed
--   BENCH_MIX        "mix" (GET / form POST / JSON POST, both directions, BEGIN and END) or
--                    "json" (JSON POST only)
--   BENCH_DIRECTION  "both" (default: INBOUND and OUTBOUND alternate), "INBOUND" or "OUTBOUND"
--                    (every request that direction; methods and BEGIN / END still cycle, and
--                    each outbound call id gets a BEGIN, then its END)
--   BENCH_PAD        bytes of an extra, ignored "padding" field in JSON bodies (default 0)
--   BENCH_RATE       total requests per second for this wrk thread (fixed-rate mode); unset or
--                    0 = as fast as the connections go
--   BENCH_ACKS       file to write the body of every 200 answer to (one per line)
--   BENCH_OUT        file the summary JSON is written to

local ffi = require("ffi")
ffi.cdef [[
typedef struct bench_timespec { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local run = os.getenv("BENCH_RUN") or "r"
local pool = tonumber(os.getenv("BENCH_POOL") or "20000")
local out_prefix = os.getenv("BENCH_OUT_PREFIX") or "bench-out-"
local mix = os.getenv("BENCH_MIX") or "mix"
local only_direction = os.getenv("BENCH_DIRECTION") or "both"
local pad = tonumber(os.getenv("BENCH_PAD") or "0")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local acks_path = os.getenv("BENCH_ACKS")
local padding = string.rep("p", pad)

local counter = 0
local interval = nil
local next_at = nil
local acks = nil

function init(args)
  if only_direction ~= "both" and only_direction ~= "INBOUND" and only_direction ~= "OUTBOUND" then
    error("BENCH_DIRECTION must be both, INBOUND or OUTBOUND, not " .. only_direction)
  end
  math.randomseed(os.time())
  if rate > 0 then
    interval = 1.0 / rate
  end
  if acks_path then
    acks = io.open(acks_path, "a")
  end
end

-- Fixed-rate mode: every request takes the next slot of a schedule (no drift); a connection
-- waits for its slot. Latency is measured from the actual send, as wrk always does.
function delay()
  if interval == nil then
    return 0
  end
  local t = now()
  if next_at == nil or next_at < t - 1.0 then
    next_at = t
  end
  next_at = next_at + interval
  local wait = (next_at - t) * 1000
  if wait < 0 then
    return 0
  end
  return wait
end

local directions = { "INBOUND", "OUTBOUND" }
local dispositions = { "ANSWERED", "ANSWERED", "NO_ANSWER", "BUSY", "FAILED:503", "CANCEL" }

local function urlencode(fields)
  local parts = {}
  for i = 1, #fields, 2 do
    local v = string.gsub(fields[i + 1], "([^%w%-%._~])", function(c)
      return string.format("%%%02X", string.byte(c))
    end)
    parts[#parts + 1] = fields[i] .. "=" .. v
  end
  return table.concat(parts, "&")
end

local function json_body(fields)
  local parts = {}
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    if fields[i] == "billable_seconds" then
      parts[#parts + 1] = '"' .. fields[i] .. '": ' .. v
    else
      parts[#parts + 1] = '"' .. fields[i] .. '": "' .. v .. '"'
    end
  end
  if pad > 0 then
    parts[#parts + 1] = '"padding": "' .. padding .. '"'
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function request()
  counter = counter + 1
  local n = counter
  local direction, status
  if only_direction == "both" then
    direction = directions[(n % 2) + 1]
    status = (math.floor(n / 2) % 2 == 0) and "BEGIN" or "END"
  else
    -- One direction: request 2k is call k's BEGIN, 2k + 1 its END.
    direction = only_direction
    status = (n % 2 == 0) and "BEGIN" or "END"
  end
  local uid
  if direction == "OUTBOUND" then
    uid = string.format("%s%06d", out_prefix, math.floor(n / 2) % pool)
  else
    uid = string.format("bench-in-%s-%d", run, n)
  end
  local from, to = "3215551081", "3215551801"
  if direction == "INBOUND" then
    from, to = "4075550" .. string.format("%03d", n % 1000), "3215551081"
  end
  local fields = {
    "uid", uid, "account_code", "ACC1", "direction", direction, "status", status,
    "from", from, "to", to, "type", "VOICE",
  }
  if status == "END" then
    fields[#fields + 1] = "disposition"
    fields[#fields + 1] = dispositions[(n % #dispositions) + 1]
    fields[#fields + 1] = "billable_seconds"
    fields[#fields + 1] = tostring(n % 300)
  end
  local method = (mix == "json") and 2 or (math.floor(n / 4) % 3)
  if method == 0 then
    -- GET: FoneStorm fills {{tokens}}; the fields of a BEGIN it cannot fill stay as tokens.
    local query = urlencode(fields)
    if status == "BEGIN" then
      query = query .. "&disposition={{disposition}}&billable_seconds={{billable_seconds}}"
    end
    return wrk.format("GET", "/callbacks/calls?" .. query)
  elseif method == 1 then
    return wrk.format("POST", "/callbacks/calls",
      { ["Content-Type"] = "application/x-www-form-urlencoded" }, urlencode(fields))
  end
  return wrk.format("POST", "/callbacks/calls", { ["Content-Type"] = "application/json" },
    json_body(fields))
end

function response(status, headers, body)
  if acks and status == 200 then
    acks:write(body, "\n")
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d}',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    latency.mean, errors.connect, errors.read, errors.write, errors.status, errors.timeout)
  local path = os.getenv("BENCH_OUT")
  if path then
    local f = io.open(path, "w")
    f:write(out, "\n")
    f:close()
  else
    io.write(out, "\n")
  end
end
