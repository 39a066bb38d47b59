-- When each user last logged in (set by a successful POST /auth/login;
-- NULL until then), shown on GET /admin/users. Not a column the
-- session-ending trigger of 0005 watches: a login ends no session.

ALTER TABLE users ADD COLUMN last_login_at timestamptz;
