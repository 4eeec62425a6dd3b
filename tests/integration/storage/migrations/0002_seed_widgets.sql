INSERT INTO widgets (name) VALUES ('alpha'), ('beta'), ('gamma');
