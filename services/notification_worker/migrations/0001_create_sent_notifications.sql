-- The worker's memory of completed sends (issue 6: no double sends). A row is written after
-- the provider took the message and before the message is acked; a redelivered message whose
-- row exists is acked without sending it again. Rows are never updated: the first record of a
-- notification stays.
CREATE TABLE sent_notifications (
  notification_id uuid        PRIMARY KEY,
  channel         text        NOT NULL CHECK (channel IN ('email', 'push')),
  -- Which provider took it and what it answered ("250 2.0.0 Ok: queued as ..."): what an
  -- operator needs to trace a message a user says never arrived.
  provider        text        NOT NULL,
  detail          text        NOT NULL DEFAULT '',
  attempt         integer     NOT NULL CHECK (attempt >= 0),
  sent_at         timestamptz NOT NULL DEFAULT now()
);

-- A row only matters while a redelivery of its message can still come, so operators prune
-- old ones (DELETE ... WHERE sent_at < now() - interval '30 days'). Rows arrive in sent_at
-- order, which is what BRIN needs: a few pages of summary instead of a B-tree entry per
-- insert on the write path.
CREATE INDEX sent_notifications_sent_at_brin ON sent_notifications USING brin (sent_at);
