//! Creating and reading payments through Hearth: card data is envelope-encrypted
//! (`/v1/kms/encrypt`, context `{tenant, purpose: "card"}`) and the row written and read
//! through `/v1/db/query` under the tenant's Row-Level-Security context.
//!
//! Every success body also carries `timings`: the microseconds each Hearth call took as this
//! function saw it (the loopback HTTP round trip to the extension included), so a caller can
//! tell Hearth's share of an invoke from the rest. See [`Timings`].
//!
//! The encryption context deliberately holds only the tenant and the purpose, not the
//! payment id: Hearth caches data keys per (KMS key, context), so every payment of a tenant
//! reuses the tenant's current data key instead of costing a KMS call. The context still
//! binds each ciphertext to its tenant: a row copied into another tenant fails to decrypt.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hearth::wire::{EncryptionContext, QueryRequest};
use hearth::Client;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::error::PaymentError;
use crate::request::{Card, Request};

/// Client-side wall-clock time of each Hearth call a request made, in the order made:
/// `encrypt_us` (`/v1/kms/encrypt`), `query_us` (`/v1/db/query`), `decrypt_us`
/// (`/v1/kms/decrypt`). Each is measured around the [`Client`] call, so it includes the HTTP
/// round trip to the extension on loopback, not only the extension's own work.
#[derive(Debug, Default)]
pub struct Timings(Vec<(&'static str, u64)>);

impl Timings {
    /// Awaits `call`, recording how long it took under `name`.
    pub async fn time<T>(&mut self, name: &'static str, call: impl Future<Output = T>) -> T {
        let t0 = Instant::now();
        let out = call.await;
        self.0.push((name, micros(t0.elapsed())));
        out
    }

    /// The `timings` object, with `handler_us` (the whole handler) added.
    pub fn to_json(&self, handler: Duration) -> Value {
        let mut m = serde_json::Map::new();
        for (name, us) in &self.0 {
            m.insert((*name).to_string(), json!(us));
        }
        m.insert("handler_us".into(), json!(micros(handler)));
        Value::Object(m)
    }
}

/// Whole microseconds.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs a validated request; the success body (without `timings`, which the caller adds).
pub async fn handle(
    client: &Client,
    req: Request,
    timings: &mut Timings,
) -> Result<Value, PaymentError> {
    match req {
        Request::Create {
            tenant,
            amount_cents,
            currency,
            card,
        } => create(client, &tenant, amount_cents, &currency, &card, timings).await,
        Request::Get {
            tenant,
            payment_id,
            reveal,
        } => get(client, &tenant, &payment_id.to_string(), reveal, timings).await,
    }
}

const INSERT: &str = "INSERT INTO payments \
    (tenant_id, amount_cents, currency, card_last4, card_ciphertext) \
    VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at";

fn card_context(tenant: &str) -> EncryptionContext {
    BTreeMap::from([
        ("tenant".to_string(), tenant.to_string()),
        ("purpose".to_string(), "card".to_string()),
    ])
}

async fn create(
    client: &Client,
    tenant: &str,
    amount_cents: i64,
    currency: &str,
    card: &Card,
    timings: &mut Timings,
) -> Result<Value, PaymentError> {
    let plaintext = Zeroizing::new(
        serde_json::to_vec(card).map_err(|_| PaymentError::InvalidRequest("card".into()))?,
    );
    let context = card_context(tenant);
    let ciphertext = timings
        .time("encrypt_us", client.encrypt(&plaintext, &context))
        .await?;
    let insert = QueryRequest {
        sql: INSERT.into(),
        params: vec![
            json!(tenant),
            json!(amount_cents),
            json!(currency),
            json!(card.last4()),
            json!(B64.encode(&ciphertext)),
        ],
        tenant: Some(tenant.to_string()),
        context: BTreeMap::new(),
        row_mode: None,
        numbers: None,
    };
    let r = timings.time("query_us", client.query(&insert)).await?;
    let row = r.rows.first().ok_or(PaymentError::Integrity)?;
    tracing::info!(tenant, payment_id = %row["id"], "payment stored");
    Ok(json!({
        "payment": {
            "paymentId": row["id"],
            "tenant": tenant,
            "amountCents": amount_cents,
            "currency": currency,
            "card": {"last4": card.last4()},
            "createdAt": row["created_at"],
        }
    }))
}

async fn get(
    client: &Client,
    tenant: &str,
    payment_id: &str,
    reveal: bool,
    timings: &mut Timings,
) -> Result<Value, PaymentError> {
    let select = QueryRequest {
        sql: "SELECT id, amount_cents, currency, card_last4, card_ciphertext, created_at \
              FROM payments WHERE id = $1"
            .into(),
        params: vec![json!(payment_id)],
        tenant: Some(tenant.to_string()),
        context: BTreeMap::new(),
        row_mode: None,
        numbers: None,
    };
    let r = timings.time("query_us", client.query(&select)).await?;
    // Another tenant's payment is invisible under RLS: the same answer as no payment at all.
    let Some(row) = r.rows.first() else {
        return Err(PaymentError::NotFound(payment_id.to_string()));
    };
    let ciphertext = row["card_ciphertext"]
        .as_str()
        .and_then(|s| B64.decode(s).ok())
        .ok_or(PaymentError::Integrity)?;
    let context = card_context(tenant);
    let d = timings
        .time("decrypt_us", client.decrypt(&ciphertext, Some(&context)))
        .await?;
    let card: Card =
        serde_json::from_slice(d.plaintext.as_bytes()).map_err(|_| PaymentError::Integrity)?;
    if row["card_last4"].as_str() != Some(card.last4()) {
        return Err(PaymentError::Integrity);
    }
    let mut card_json = json!({
        "last4": card.last4(),
        "masked": card.masked(),
        "expiry": card.expiry,
    });
    if reveal {
        card_json["pan"] = json!(card.pan);
    }
    Ok(json!({
        "payment": {
            "paymentId": row["id"],
            "tenant": tenant,
            "amountCents": row["amount_cents"],
            "currency": row["currency"],
            "card": card_json,
            "createdAt": row["created_at"],
        }
    }))
}
