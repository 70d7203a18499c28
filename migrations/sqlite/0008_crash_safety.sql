-- Set when a process starts posting a note: a later try first looks for the note in the PSA,
-- so a process stopped between the PSA's answer and recording it cannot post a note twice.
ALTER TABLE notes ADD COLUMN post_started_at TEXT;

-- The process holding a job's lease, so a process that stops cleanly hands back only its own.
ALTER TABLE jobs ADD COLUMN leased_by TEXT;
