-- Widgets for the storage tests. This comment holds text that would end a raw string
-- literal )" or )sql" and a backslash \ and 'quotes', to prove the SQL is embedded as is.
CREATE TABLE widgets (
  id serial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  label text NOT NULL DEFAULT 'héllo ✓ "wörld"'
);
