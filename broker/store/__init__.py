"""What lives in Redis: the key layout, codecs, Lua scripts, fenced writes and reads."""
