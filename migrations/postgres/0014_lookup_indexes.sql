-- A ticket's notes are read on every intake and outcome; without an index each read scanned
-- every note ever written.
CREATE INDEX notes_by_ticket ON notes(ticket_ref);

-- Polls and the other jobs are claimed in separate lanes: with the lane in the index, a claim
-- in one lane no longer steps over every due job of the other.
CREATE INDEX jobs_due_by_lane ON jobs((kind = 'poll'), run_at, id) WHERE NOT done;
DROP INDEX jobs_due;
