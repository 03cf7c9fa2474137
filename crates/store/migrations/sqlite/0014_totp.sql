-- Two-factor sign-in (TOTP): the secret sealed with the person's key; enabled once a code
-- from it was confirmed; the last step used, so that a code works once.
ALTER TABLE app_user ADD COLUMN totp_secret BLOB;
ALTER TABLE app_user ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE app_user ADD COLUMN totp_last_step INTEGER;
