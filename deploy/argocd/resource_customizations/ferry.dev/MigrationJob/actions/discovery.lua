-- Actions ArgoCD offers on a MigrationJob: pause and resume follow spec.paused; restart (a new
-- spec.restartRequest: resume from the checkpoint, replacing conflicting target rows) is for a
-- job that is not paused (the operator ignores it while paused) and not completed.
local actions = {}
local paused = obj.spec ~= nil and obj.spec.paused == true
local phase = obj.status ~= nil and obj.status.phase or nil
actions["pause"] = { ["disabled"] = paused or phase == "Completed" }
actions["resume"] = { ["disabled"] = not paused }
actions["restart"] = { ["disabled"] = paused or phase == "Completed" }
return actions
