-- Argo CD health of a dayzero Gauntlet (resource.customizations.health.dayzero.dev_Gauntlet).
-- Lua 5.1, as Argo CD's gopher-lua runs it. Reads only status, which the operator alone writes.
local hs = { status = "Progressing", message = "Waiting for the operator" }

local status = obj.status
if status == nil then return hs end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Could not run"
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.status == "False" and c.message ~= nil and c.message ~= "" then
        hs.message = hs.message .. ": " .. c.message
        break
      end
    end
  end
  return hs
end
if phase == "Succeeded" then
  local verdict = status.verdict or "unknown"
  if verdict == "Pass" then
    hs.status = "Healthy"
    hs.message = "Passed" .. (status.promoted and "; promoted" or "")
    if status.winner ~= nil then hs.message = hs.message .. "; winner " .. status.winner end
  elseif verdict == "Skipped" then
    hs.status = "Healthy"
    hs.message = "Skipped"
  else
    -- A Fail or Error verdict: the model did not earn its promotion.
    hs.status = "Degraded"
    hs.message = "Verdict " .. verdict
    if status.suites ~= nil then
      for _, s in ipairs(status.suites) do
        if s.verdict == "Fail" or s.verdict == "Error" then
          hs.message = hs.message .. "; " .. (s.suite or "?") .. " on " .. (s.target or "?") .. ": " .. (s.reason or s.verdict)
        end
      end
    end
  end
  return hs
end
hs.message = (phase or "Pending") .. ((phase == "Running" and status.jobName ~= nil) and (": job " .. status.jobName) or "")
return hs
