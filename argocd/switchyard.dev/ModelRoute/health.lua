-- Argo CD health of a Switchyard ModelRoute, from the conditions the controller writes
-- (kstatus conventions): Ready only when the desired split is fully in effect, Reconciling
-- while a migration runs, Stalled when it needs a person (rolled back, aborted, past its
-- progress deadline, a backend missing, its model name served by an older route).
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
  hs.message = "waiting for the Switchyard controller to report on this route"
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
-- A paused migration still holds its step (and is still analysed): waiting for a person.
if status.paused == true or status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = says(reconciling or ready or { type = "Paused" })
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
  -- The route serves, but another route of its namespace claims the same model name.
  local conflict = condition(status.conditions, "ModelConflict")
  if conflict ~= nil and conflict.status == "True" then
    hs.message = hs.message .. "; " .. says(conflict)
  end
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
