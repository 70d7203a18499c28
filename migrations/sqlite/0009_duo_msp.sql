-- A Duo account's users can be read with an MSP parent's Accounts API keys acting on one child
-- account (the child's own Auth API keys still send pushes); then admin_ikey and
-- admin_skey_sealed are empty. The Accounts secret key is sealed with the master key.
ALTER TABLE duo_accounts ADD COLUMN directory_keys TEXT NOT NULL DEFAULT 'admin_api'
    CHECK (directory_keys IN ('admin_api', 'accounts_api'));
ALTER TABLE duo_accounts ADD COLUMN accounts_api_host TEXT;
ALTER TABLE duo_accounts ADD COLUMN accounts_ikey TEXT;
ALTER TABLE duo_accounts ADD COLUMN accounts_skey_sealed TEXT;
-- The child account as Duo's account list returned it.
ALTER TABLE duo_accounts ADD COLUMN child_account_id TEXT;
ALTER TABLE duo_accounts ADD COLUMN child_name TEXT;
ALTER TABLE duo_accounts ADD COLUMN child_api_host TEXT;
-- How the code the caller reads back reaches the phone: deskproof's code in the Auth API
-- push's details, or the confirmation code of an Admin API verification push.
ALTER TABLE duo_accounts ADD COLUMN caller_code_via TEXT NOT NULL DEFAULT 'push_details'
    CHECK (caller_code_via IN ('push_details', 'verification_push'));

-- Which push an attempt sent: 'auth' (txid is the Auth API transaction) or 'verification'
-- (txid is the verification push's push_id). Older attempts are Auth API pushes.
ALTER TABLE attempts ADD COLUMN push_kind TEXT NOT NULL DEFAULT 'auth'
    CHECK (push_kind IN ('auth', 'verification'));
