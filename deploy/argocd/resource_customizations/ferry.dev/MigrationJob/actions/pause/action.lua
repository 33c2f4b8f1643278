-- Pauses the job: the operator stops its worker and keeps the checkpoint.
if obj.spec == nil then obj.spec = {} end
obj.spec.paused = true
return obj
