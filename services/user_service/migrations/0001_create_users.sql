-- Users of the notification suite. Push tokens live in an array on the user's row: a
-- user has at most 20, they are always read together with the user, and keeping them on
-- the row makes every write a single-row write and every read a single-row read.
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text        NOT NULL,
    email         text        NOT NULL,
    locale        text        NOT NULL DEFAULT 'en',
    push_tokens   text[]      NOT NULL DEFAULT '{}',
    email_enabled boolean     NOT NULL DEFAULT true,
    push_enabled  boolean     NOT NULL DEFAULT true,
    -- Kept in microseconds (the API shows milliseconds) so that users created within
    -- one millisecond still list in the order they were created.
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT users_email_length CHECK (octet_length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_push_tokens_count CHECK (cardinality(push_tokens) <= 20)
);

-- Emails are stored as given but unique regardless of case: the database, not a
-- check-then-insert in the service, decides which of two concurrent creates wins.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- The list's stable order (created_at, id) read straight from an index.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
