-- Argo CD health of a Switchyard InferenceBackend, from the conditions the controller writes
-- (kstatus conventions): Stalled for what waiting will not fix (a Secret missing or not
-- labelled, pods that cannot be scheduled or keep crashing, failed warm-ups, a workload the
-- API server refuses), Reconciling while pods start or warm up, Ready when it takes traffic.
-- Argo CD runs argocd-cm scripts without Lua's string library: only `..` builds messages.
local function condition(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function says(c)
  local reason = c.reason or c.type
  if c.message == nil or c.message == "" then
    return reason
  end
  return reason .. ": " .. c.message
end

local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the Switchyard controller to report on this backend"
  return hs
end
-- Conditions of an older generation describe the spec before the last edit.
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the Switchyard controller to observe generation " .. generation
  return hs
end

local ready = condition(status.conditions, "Ready")
local reconciling = condition(status.conditions, "Reconciling")
local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = says(reconciling)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = says(ready)
  -- Still serving, with less capacity while the gateway keeps failing endpoints out.
  local ejected = condition(status.conditions, "EndpointsEjected")
  if ejected ~= nil and ejected.status == "True" then
    hs.message = hs.message .. "; " .. says(ejected)
  end
  return hs
end
-- Scaled to zero on purpose: nothing is wrong, and nothing serves until it is scaled up.
if ready ~= nil and ready.reason == "ScaledToZero" then
  hs.status = "Suspended"
  hs.message = says(ready)
  return hs
end
if ready ~= nil then
  hs.status = "Progressing"
  hs.message = says(ready)
  return hs
end
hs.status = "Unknown"
hs.message = "the status of generation " .. (status.observedGeneration or "?") .. " has no Ready condition"
return hs
