-- Argo CD health of a dayzero Lane (resource.customizations.health.dayzero.dev_Lane).
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
local applied = condition(status, "Applied")
if ready == nil then return hs end
if ready.status ~= "True" then
  -- InvalidSpec or NoBackendAvailable: nothing this Lane routes can be served.
  hs.status = "Degraded"
  hs.message = said(ready, "Not Ready")
  return hs
end
if applied ~= nil and applied.status == "False" then
  if applied.reason == "Pending" then
    hs.message = said(applied, "Waiting for the gateways to load the new routing")
    return hs
  end
  hs.status = "Degraded"
  hs.message = said(applied, "The routing was not applied")
  return hs
end
hs.status = "Healthy"
hs.message = said(ready, "Routed")
if applied ~= nil and applied.status == "Unknown" then
  hs.message = hs.message .. "; " .. said(applied, "no gateway reported its config hash")
end
return hs
