-- Asks the Switchyard controller to skip to the desired split now, ending the migration, as
-- `kubectl switchyard promote --full` does: the command and a fresh id in annotations (the
-- controller carries out each id once), never spec, so Argo CD sees no drift and reverts
-- nothing. The id joins the time with the resourceVersion the action ran on: a second action,
-- even within the same second, runs on the object the first one changed.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["switchyard.dev/command"] = "promote-full"
obj.metadata.annotations["switchyard.dev/command-id"] = "argocd-" .. os.time() .. "-" .. obj.metadata.resourceVersion
return obj
