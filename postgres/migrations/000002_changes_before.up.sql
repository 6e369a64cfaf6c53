-- What each row held before its last content change, so the changefeed can
-- tell a stream that a user it showed no longer matches its filter (a
-- leave event), from memory or, for a resumed stream, from here. NULL for
-- a row never changed since it was inserted. Adding nullable columns
-- without a default rewrites nothing.
ALTER TABLE users
    -- The folded names (as first_name_lc, last_name_lc) before the change.
    ADD COLUMN before_first_name_lc text COLLATE "C",
    ADD COLUMN before_last_name_lc  text COLLATE "C",
    -- The changed_xid before the change: a stream whose position is older
    -- did not see that state, and cannot know what it last showed.
    ADD COLUMN before_changed_xid   xid8;
