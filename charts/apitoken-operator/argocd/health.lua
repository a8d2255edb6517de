-- Argo CD health check for apitoken.dev/ApiToken (resource.customizations.health.apitoken.dev_ApiToken).
-- Lua 5.1 with only the libraries Argo CD loads for custom checks (base, table, package, a safe
-- os): no string or math library, so no string methods and no string.format.
--
-- Reads the kstatus conditions the operator writes, in kstatus's order: Reconciling=True (a write
-- is being retried) or a generation the operator has not observed yet is Progressing; Stalled=True
-- (InvalidSpec or SecretConflict: only a change can fix it) is Degraded; Ready=True is Healthy;
-- an expired one-shot value (Ready=False reason Expired, autoRenew off) is Suspended: it waits
-- for a rotate request. Any other Ready=False is Degraded.
local hs = {}

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to issue a value"
  return hs
end

local reconciling = condition(status.conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready.reason == "Expired" then
  hs.status = "Suspended"
  hs.message = describe(ready)
else
  hs.status = "Degraded"
  hs.message = describe(ready)
end
return hs
