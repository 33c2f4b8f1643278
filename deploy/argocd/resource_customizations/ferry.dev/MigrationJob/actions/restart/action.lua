-- Restarts the job: a new spec.restartRequest value (the time, UTC) makes the operator start a
-- new worker that resumes from the checkpoint and replaces target rows that conflict.
if obj.spec == nil then obj.spec = {} end
obj.spec.restartRequest = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
