-- A click's attempt holds its ticket while deskproof matches the contact and sends the push.
-- The process doing that renews `matching_until` (milliseconds since 1970, deskproof's clock);
-- once it runs out, the process is taken to have stopped and the attempt no longer holds the
-- ticket. Attempts from before this column fall back to their age.
ALTER TABLE attempts ADD COLUMN matching_until BIGINT;
