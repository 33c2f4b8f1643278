-- ArgoCD health of a ferry.dev MigrationJob, from its status:
-- Progressing while being deleted, starting, prechecking, copying, or retrying after a
-- retryable error (back-off); Healthy while replicating or once completed; Suspended when
-- paused; Degraded when failed for good (not retryable: needs a fix and spec.restartRequest).
local hs = {}
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "MigrationJob is being deleted: stopping its worker"
  return hs
end
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the job"
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on the latest change"
  return hs
end

local function condition(type)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == type then return c end
  end
  return nil
end

local phase = status.phase
local failed = condition("Failed")
local ready = condition("Ready")
local reason = ready ~= nil and ready.reason or nil
if phase ~= "Failed" and (reason == "BackOff" or reason == "Retrying") then
  hs.status = "Progressing"
  hs.message = "Retrying automatically: " .. (ready.message or "")
  return hs
end
if phase == "Failed" or (failed ~= nil and failed.status == "True") then
  hs.status = "Degraded"
  if status.lastError ~= nil and status.lastError.message ~= nil then
    hs.message = status.lastError.stage .. ": " .. status.lastError.message
  elseif failed ~= nil and failed.message ~= nil then
    hs.message = failed.message
  else
    hs.message = "The migration failed"
  end
  return hs
end
if phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused; set spec.paused to false to resume"
  return hs
end
if phase == "Completed" then
  hs.status = "Healthy"
  hs.message = "Existing data migrated"
  return hs
end
if phase == "Running" and status.stage == "Incremental" then
  hs.status = "Healthy"
  local lag = "unknown"
  if status.incremental ~= nil and status.incremental.lagSeconds ~= nil then
    lag = tostring(status.incremental.lagSeconds) .. "s"
  end
  hs.message = "Replicating the binlog, lag " .. lag
  return hs
end
hs.status = "Progressing"
if status.stage == "Full" and status.full ~= nil and status.full.percent ~= nil then
  hs.message = "Copying existing data: " .. status.full.percent
elseif reason ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = reason .. ": " .. ready.message
elseif status.stage ~= nil then
  hs.message = status.stage .. " " .. phase
else
  hs.message = phase
end
return hs
