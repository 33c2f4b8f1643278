-- ArgoCD health of a ferry.dev MigrationSource, from its conditions: Healthy when the operator
-- reached the server (Ready), saying whether its binary log can feed replication
-- (BinlogReady); Degraded when it cannot (wrong credentials, unreachable; checked again every
-- minute); Progressing until first checked, after a change, and while being deleted.
local hs = {}
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "MigrationSource is being deleted"
  return hs
end
local status = obj.status

local function condition(type)
  if status == nil or status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == type then return c end
  end
  return nil
end

local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check the source"
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check the latest change"
  return hs
end
if ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
  return hs
end
hs.status = "Healthy"
local server = status.serverVersion ~= nil and (" (" .. status.serverVersion .. ")") or ""
local binlog = condition("BinlogReady")
if binlog ~= nil and binlog.status == "True" then
  hs.message = "Server answered" .. server .. "; binary log ready for replication"
elseif binlog ~= nil then
  hs.message = "Server answered" .. server .. "; not ready for replication: " .. (binlog.message or "")
else
  hs.message = "Server answered" .. server
end
return hs
