-- Shared by append.lua and replay.lua (scripts.ts puts it in place of their `-- #include frame.lua` line): the
-- bytes of a history entry's frame as the client receives it, the one count the writer's byte trim and the
-- reader's byte cut both use. An entry holds b = head \1 tail; the client gets head .. ',"offset":"' .. offset
-- .. '"' .. tail, and the offset is as long as the entry id.
local OFFSET_CHARS = #',"offset":"' + #'"' - #'\1'
local function frameBytes(id, body)
  return #body + OFFSET_CHARS + #id
end
