-- Argo CD health of a dayzero ModelDeployment (resource.customizations.health.dayzero.dev_ModelDeployment).
-- Lua 5.1, as Argo CD's gopher-lua runs it. Reads only status, which the operator alone writes.
local hs = { status = "Progressing", message = "Waiting for the operator" }

local function condition(status, type_)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then return c end
  end
  return nil
end

local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then return c.message end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then return c.reason end
  return fallback
end

local status = obj.status
if status == nil then return hs end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = condition(status, "Ready")
local degraded = condition(status, "Degraded")
local phase = status.phase

if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = said(ready, "Suspended: no replicas")
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = said(ready, "Failed")
  return hs
end
if ready ~= nil and ready.status == "True" then
  local why = said(degraded, "")
  -- A surge to a new revision, or groups still coming up, is a rollout under way.
  if phase == "Degraded" and (string.find(why, "surging", 1, true) or string.find(why, "groups ready", 1, true)) then
    hs.status = "Progressing"
    hs.message = why
    return hs
  end
  hs.status = "Healthy"
  hs.message = said(ready, "Ready")
  if why ~= "" and phase == "Degraded" then hs.message = hs.message .. " (" .. why .. ")" end
  return hs
end
if phase == "Degraded" then
  -- Not Ready and degraded: a crash loop or a broken group.
  hs.status = "Degraded"
  hs.message = said(degraded, said(ready, "Degraded"))
  return hs
end
-- Pending, Downloading, Loading, or a phase not written yet: still reconciling.
hs.message = said(ready, phase or "Reconciling")
return hs
