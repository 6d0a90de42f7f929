-- API tokens get a role (runner/access): admin, operator or read. Existing
-- tokens keep what they could do: admin ones stay admin, others read.
-- The admin column stays, written as role = 'admin', for older readers.
ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'read';
UPDATE tokens SET role = 'admin' WHERE admin;
