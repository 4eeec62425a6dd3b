-- A template code belongs to one channel; each locale of a code has versions 1, 2, 3...
-- that never change once written (a new text is a new version).
CREATE TABLE templates (
  code       text PRIMARY KEY CHECK (code ~ '^[a-z0-9_.-]{1,64}$'),
  channel    text NOT NULL CHECK (channel IN ('email', 'push')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The list filters by channel and pages in code order.
CREATE INDEX templates_channel_code ON templates (channel, code);

CREATE TABLE template_versions (
  code       text NOT NULL REFERENCES templates (code),
  locale     text NOT NULL,
  version    integer NOT NULL CHECK (version >= 1),
  subject    text,
  body       text NOT NULL,
  html_body  text,
  title      text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (code, locale, version)
);

-- Immutability is the service's promise (and what lets it cache a compiled version
-- forever), so the database refuses an UPDATE too, whoever sends it.
CREATE FUNCTION template_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'template versions are immutable; add a new version instead';
END
$$;

CREATE TRIGGER template_versions_no_update BEFORE UPDATE ON template_versions
  FOR EACH ROW EXECUTE FUNCTION template_versions_immutable();
