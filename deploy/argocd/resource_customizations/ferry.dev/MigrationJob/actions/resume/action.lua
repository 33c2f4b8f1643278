-- Resumes a paused job from its checkpoint.
if obj.spec == nil then obj.spec = {} end
obj.spec.paused = false
return obj
