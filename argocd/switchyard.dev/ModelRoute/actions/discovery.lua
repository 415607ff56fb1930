-- The migration commands `kubectl switchyard` offers, each enabled only where the controller
-- would carry it out rather than answer "ignored": promote, abort and pause while a migration
-- runs, resume while it is paused, retry after a rollback (until spec changes).
local status = obj.status or {}
local migrating = status.target ~= nil and #status.target > 0
local paused = status.paused == true
local rolledBack = status.rolledBack ~= nil and #status.rolledBack > 0

local actions = {}
actions["promote"] = {
  ["disabled"] = not migrating,
  ["displayName"] = "Promote to the next step",
  ["iconClass"] = "fa fa-fw fa-forward",
}
actions["promote-full"] = {
  ["disabled"] = not migrating,
  ["displayName"] = "Promote fully",
  ["iconClass"] = "fa fa-fw fa-fast-forward",
}
actions["abort"] = {
  ["disabled"] = not migrating,
  ["displayName"] = "Abort (back to the stable split)",
  ["iconClass"] = "fa fa-fw fa-undo",
}
actions["pause"] = {
  ["disabled"] = not migrating or paused,
  ["displayName"] = "Pause",
  ["iconClass"] = "fa fa-fw fa-pause-circle",
}
actions["resume"] = {
  ["disabled"] = not (migrating and paused),
  ["displayName"] = "Resume",
  ["iconClass"] = "fa fa-fw fa-play-circle",
}
actions["retry"] = {
  ["disabled"] = not rolledBack,
  ["displayName"] = "Retry the rolled-back split",
  ["iconClass"] = "fa fa-fw fa-redo",
}
return actions
