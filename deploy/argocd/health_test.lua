-- Runs health.lua against sample MigrationJobs in every phase: lua5.4 health_test.lua
local dir = arg[0]:match("(.*/)") or "./"

local function health(o)
  local env = setmetatable({ obj = o }, { __index = _G })
  local fn = assert(loadfile(dir .. "health.lua", "t", env))
  return fn()
end

local cases = {
  { "no status yet", {}, "Progressing", "Waiting for the operator" },
  { "pending", { status = { phase = "Pending" } }, "Progressing", "Pending" },
  { "prechecking", { status = { phase = "Running", stage = "Precheck" } }, "Progressing", "Precheck Running" },
  { "copying", { status = { phase = "Running", stage = "Full", full = { percent = "42.0%" } } },
    "Progressing", "Copying existing data: 42.0%" },
  { "replicating", { status = { phase = "Running", stage = "Incremental", incremental = { lagSeconds = 3 } } },
    "Healthy", "lag 3s" },
  { "paused", { status = { phase = "Paused", stage = "Incremental" } }, "Suspended", "spec.paused" },
  { "completed", { status = { phase = "Completed", stage = "Completed" } }, "Healthy", "migrated" },
  { "failed", { status = { phase = "Failed", stage = "Incremental",
      lastError = { stage = "Incremental", message = "duplicate key on shop.items (id=7)" } } },
    "Degraded", "Incremental: duplicate key on shop.items" },
  { "failed condition while running", { status = { phase = "Running", stage = "Full",
      conditions = { { type = "Failed", status = "True", message = "source unreachable" } } } },
    "Degraded", "source unreachable" },
  { "stale status", { metadata = { generation = 3 }, status = { phase = "Running", stage = "Incremental",
      observedGeneration = 2 } }, "Progressing", "latest change" },
}

local failures = 0
for _, case in ipairs(cases) do
  local name, o, want_status, want_message = case[1], case[2], case[3], case[4]
  local hs = health(o)
  if hs.status ~= want_status or not string.find(hs.message or "", want_message, 1, true) then
    failures = failures + 1
    print(string.format("FAIL %s: got %s %q, want %s containing %q", name, tostring(hs.status),
      tostring(hs.message), want_status, want_message))
  end
end
print(string.format("%d passed, %d failed", #cases - failures, failures))
if failures > 0 then os.exit(1) end
