-- Commands waiting to be delivered are looked up by thing (push, the
-- pending-command limit, the things with pending commands at start) and by
-- age (expiry); the others never are. Partial indexes hold only the SENDING
-- rows, so they stay small while commands pile up, and a command leaving
-- SENDING is one index deletion each instead of a key moved within a full
-- index.
DROP INDEX commands_thing_state;
DROP INDEX commands_state_created;
CREATE INDEX commands_sending ON commands (thing_id, seq) WHERE state = 'SENDING';
CREATE INDEX commands_sending_created ON commands (created_at) WHERE state = 'SENDING';
