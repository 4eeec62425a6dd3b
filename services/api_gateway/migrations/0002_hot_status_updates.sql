-- Every accepted notification is updated at least three times (pending -> queued ->
-- processing -> delivered). With `status` in an index none of those updates can be HOT:
-- each one writes a new entry into every index of the table. Without it, and with room
-- left on each page, PostgreSQL updates the row in place in the heap and leaves the
-- indexes alone, which is most of the ledger's write cost at high rates.
--
-- The price: a list filtered by status alone (no user_id) walks the newest rows and
-- filters them, and counts by scanning. That is an operator's query, rare next to the
-- writes; lists per user keep their index.
DROP INDEX notifications_status_created_idx;
CREATE INDEX notifications_created_idx ON notifications (created_at DESC, notification_id);
ALTER TABLE notifications SET (fillfactor = 85);
