-- Tokens are pruned: expired ones of every kind by housekeeping (by
-- expiry; tokens that never expire are not in the index), and a thing's
-- thing tokens beyond its newest few at each onboarding (by subject, in
-- stored order: the rowid every index entry ends with).
CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at > 0;
CREATE INDEX tokens_thing ON tokens (subject) WHERE kind = 'thing';
