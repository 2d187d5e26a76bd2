-- Submit runs of the task `echo` to the run API until this thread has had its share
-- answered. Settings come from the environment: ENGINE_BENCH_TOKEN, ENGINE_BENCH_SHARE.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  token = os.getenv("ENGINE_BENCH_TOKEN")
  share = tonumber(os.getenv("ENGINE_BENCH_SHARE"))
  sent, answered = 0, 0
end

function request()
  sent = sent + 1
  local body = string.format('{"task": "echo", "inputs": {"i": %d}}', thread_id * 1000000 + sent)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
  return wrk.format("POST", "/api/v1/runs", headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= share then
    wrk.thread:stop()
  end
end
