-- The gateway's ledger: one row per accepted notification, and the idempotency record
-- that makes a retried POST answer what the first one answered.
--
-- A row is written as `pending` before the message is published (it claims the
-- request_id, so concurrent duplicates find it) and becomes `queued` once the broker
-- confirmed, or `skipped`; a publish that fails deletes its pending row, so nothing blocks
-- the client's retry. A pending row older than the publish deadline belongs to a gateway
-- that died mid-request and may be taken over by the next request with the same id.
-- Pending rows are never shown by GET or list: no 202 was given for them.
CREATE TABLE notifications (
  notification_id   uuid        PRIMARY KEY,
  -- Which API key sent it, as a digest: idempotency is per key, and the key itself is a
  -- secret that never reaches the database.
  api_key_id        text        NOT NULL,
  request_id        text        NOT NULL CHECK (char_length(request_id) BETWEEN 1 AND 128),
  -- SHA-256 of the canonical request: same request_id with another body is a 409.
  fingerprint       text        NOT NULL,
  user_id           uuid        NOT NULL,
  notification_type text        NOT NULL CHECK (notification_type IN ('email', 'push')),
  template_code     text        NOT NULL,
  priority          smallint    NOT NULL CHECK (priority BETWEEN 0 AND 9),
  metadata          jsonb       NOT NULL DEFAULT '{}',
  status            text        NOT NULL CHECK (status IN ('pending', 'queued', 'processing',
                                  'retrying', 'delivered', 'failed', 'skipped')),
  reason            text,       -- why it was skipped
  attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT notifications_idempotency_key UNIQUE (api_key_id, request_id)
);

-- GET /api/v1/notifications?user_id=&status=: newest first, stable across pages.
CREATE INDEX notifications_user_created_idx
  ON notifications (user_id, created_at DESC, notification_id);
CREATE INDEX notifications_status_created_idx
  ON notifications (status, created_at DESC, notification_id);
