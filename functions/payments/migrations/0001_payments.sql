-- Payments, one row per card payment, isolated per tenant by Row-Level Security.
--
-- The card number and expiry never reach this table in clear: card_ciphertext is an AWS
-- Encryption SDK message made by Hearth (POST /v1/kms/encrypt) under the encryption context
-- {tenant, purpose: "card"}. card_last4 is kept in clear for display, as PCI DSS allows.
--
-- Every request reaches the database through Hearth, which runs it in a transaction that
-- first sets app.tenant_id (transaction-local) to the request's tenant. The policy reads it
-- with NULLIF(.., ''): an unset custom setting reads as '' after first use, not NULL, and ''
-- must match no row.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'payments_app') THEN
        -- A group role: grant it to the login role Hearth connects as (GRANT payments_app TO <role>).
        CREATE ROLE payments_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;

CREATE TABLE payments (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       text        NOT NULL CHECK (tenant_id <> ''),
    amount_cents    bigint      NOT NULL CHECK (amount_cents > 0),
    currency        char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    card_last4      char(4)     NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    card_ciphertext bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payments_tenant_created ON payments (tenant_id, created_at DESC);

-- ENABLE applies the policies to ordinary roles; FORCE applies them to the table owner too.
ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments FORCE ROW LEVEL SECURITY;

CREATE POLICY payments_tenant_isolation ON payments
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

-- Least privilege: the function creates and reads payments; it never updates or deletes.
REVOKE ALL ON payments FROM PUBLIC;
GRANT SELECT, INSERT ON payments TO payments_app;
