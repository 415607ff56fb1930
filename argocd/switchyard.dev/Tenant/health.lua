-- Argo CD health of a Switchyard Tenant, from the conditions the controller writes: Ready
-- when every key resolves to a Secret labelled switchyard.dev/credential: tenant-key, and
-- Stalled, naming each key and what to fix, when one does not.
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
  hs.message = "waiting for the Switchyard controller to report on this tenant"
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
local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = says(stalled)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
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
