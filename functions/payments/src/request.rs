//! The event: parsed and validated into a [`Request`] before anything is encrypted or
//! stored. Card data lives in [`Card`], which redacts itself in `Debug` and is zeroized on
//! drop.
//!
//! ```json
//! {"action": "create", "tenant": "t1", "amountCents": 1234, "currency": "EUR",
//!  "card": {"pan": "4111111111111111", "expiry": "12/29"}}
//! {"action": "get", "tenant": "t1", "paymentId": "…", "reveal": false}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{invalid, PaymentError};

/// Largest amount accepted, in minor units (a sanity bound, not a business rule).
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000_000;

/// A validated request.
#[derive(Debug)]
pub enum Request {
    /// Store a card payment.
    Create {
        /// Tenant id (the RLS context and part of the encryption context).
        tenant: String,
        /// Amount in minor units.
        amount_cents: i64,
        /// ISO 4217 code, upper case.
        currency: String,
        /// The card.
        card: Card,
    },
    /// Fetch a payment, decrypting its card data.
    Get {
        /// Tenant id.
        tenant: String,
        /// The payment's id (a UUID).
        payment_id: uuid::Uuid,
        /// Return the full card number (otherwise only a masked form).
        reveal: bool,
    },
}

/// Card data: what gets encrypted. Serialized as the plaintext of the ESDK message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Card {
    /// Primary account number, digits only.
    pub pan: String,
    /// `MM/YY`.
    pub expiry: String,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("pan", &format_args!("<redacted, last4 {}>", self.last4()))
            .field("expiry", &"<redacted>")
            .finish()
    }
}

impl Card {
    /// The last four digits.
    pub fn last4(&self) -> &str {
        &self.pan[self.pan.len().saturating_sub(4)..]
    }

    /// `411111******1111`: first six and last four, as receipts show it.
    pub fn masked(&self) -> String {
        let n = self.pan.len();
        let head = &self.pan[..6.min(n)];
        format!("{head}{}{}", "*".repeat(n.saturating_sub(10)), self.last4())
    }
}

/// Parses and validates an event.
pub fn parse(event: &Value) -> Result<Request, PaymentError> {
    let obj = event
        .as_object()
        .ok_or_else(|| invalid("the event must be a JSON object with an \"action\""))?;
    let action = obj
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"action\" is required: \"create\" or \"get\""))?;
    let allowed: &[&str] = match action {
        "create" => &["action", "tenant", "amountCents", "currency", "card"],
        "get" => &["action", "tenant", "paymentId", "reveal"],
        _ => return Err(invalid("\"action\" must be \"create\" or \"get\"")),
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown field {:?} for action {action}; accepted: {}",
            k.chars().take(64).collect::<String>(),
            allowed.join(", ")
        )));
    }
    let tenant = tenant(obj.get("tenant"))?;
    match action {
        "create" => Ok(Request::Create {
            tenant,
            amount_cents: amount(obj.get("amountCents"))?,
            currency: currency(obj.get("currency"))?,
            card: card(obj.get("card"))?,
        }),
        _ => Ok(Request::Get {
            tenant,
            payment_id: obj
                .get("paymentId")
                .and_then(Value::as_str)
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or_else(|| invalid("\"paymentId\" must be a payment id (a UUID)"))?,
            reveal: match obj.get("reveal") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(invalid("\"reveal\" must be true or false")),
            },
        }),
    }
}

fn tenant(v: Option<&Value>) -> Result<String, PaymentError> {
    let t = v
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"tenant\" is required (a string)"))?;
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(invalid(
            "\"tenant\" must be 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'",
        ));
    }
    Ok(t.to_string())
}

fn amount(v: Option<&Value>) -> Result<i64, PaymentError> {
    match v.and_then(Value::as_i64) {
        Some(n) if (1..=MAX_AMOUNT_CENTS).contains(&n) => Ok(n),
        _ => Err(invalid(format!(
            "\"amountCents\" must be an integer from 1 to {MAX_AMOUNT_CENTS}"
        ))),
    }
}

fn currency(v: Option<&Value>) -> Result<String, PaymentError> {
    match v.and_then(Value::as_str) {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Ok(c.to_string()),
        _ => Err(invalid(
            "\"currency\" must be an ISO 4217 code in upper case, e.g. \"EUR\"",
        )),
    }
}

fn card(v: Option<&Value>) -> Result<Card, PaymentError> {
    let c = v.and_then(Value::as_object).ok_or_else(|| {
        invalid("\"card\" is required: {\"pan\": \"...\", \"expiry\": \"MM/YY\"}")
    })?;
    if let Some(k) = c.keys().find(|k| !matches!(k.as_str(), "pan" | "expiry")) {
        return Err(invalid(format!(
            "unknown field {:?} in \"card\"; accepted: pan, expiry",
            k.chars().take(64).collect::<String>()
        )));
    }
    let pan: String = c
        .get("pan")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"card.pan\" is required (a string of digits)"))?
        .chars()
        .filter(|ch| *ch != ' ')
        .collect();
    let card = Card {
        pan,
        expiry: c
            .get("expiry")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    };
    if !(12..=19).contains(&card.pan.len()) || !card.pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("\"card.pan\" must be 12 to 19 digits"));
    }
    if !luhn(&card.pan) {
        return Err(invalid("\"card.pan\" fails its check digit (Luhn)"));
    }
    if !expiry_ok(&card.expiry) {
        return Err(invalid(
            "\"card.expiry\" must be MM/YY with a month from 01 to 12",
        ));
    }
    Ok(card)
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn expiry_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b'/'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
        && matches!(s[..2].parse::<u8>(), Ok(1..=12))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn create(card: Value) -> Value {
        json!({"action": "create", "tenant": "t1", "amountCents": 1234, "currency": "EUR", "card": card})
    }

    #[test]
    fn valid_create_and_get() {
        let r = parse(&create(
            json!({"pan": "4111 1111 1111 1111", "expiry": "12/29"}),
        ))
        .unwrap();
        let Request::Create {
            card, amount_cents, ..
        } = r
        else {
            panic!()
        };
        assert_eq!(card.pan, "4111111111111111");
        assert_eq!(card.masked(), "411111******1111");
        assert_eq!(amount_cents, 1234);
        let shown = format!("{card:?}");
        assert!(!shown.contains("411111"), "{shown}");
        let r = parse(
            &json!({"action": "get", "tenant": "t1", "paymentId": "5b1c3f38-6d34-4f0b-9a43-3b2d4e7e9a10"}),
        );
        assert!(matches!(r, Ok(Request::Get { reveal: false, .. })));
    }

    #[test]
    fn bad_requests_are_named_without_values() {
        let cases = [
            (json!("x"), "JSON object"),
            (json!({"tenant": "t1"}), "\"action\" is required"),
            (
                json!({"action": "refund", "tenant": "t1"}),
                "\"action\" must be",
            ),
            (
                json!({"action": "get", "tenant": "t 1", "paymentId": "x"}),
                "\"tenant\" must be",
            ),
            (
                json!({"action": "get", "tenant": "t1", "paymentId": "4111111111111111"}),
                "paymentId",
            ),
            (
                json!({"action": "get", "tenant": "t1", "paymentId": "5b1c3f38-6d34-4f0b-9a43-3b2d4e7e9a10", "pan": "4111111111111111"}),
                "unknown field \"pan\"",
            ),
            (
                create(json!({"pan": "4111111111111112", "expiry": "12/29"})),
                "Luhn",
            ),
            (
                create(json!({"pan": "4111-1111-1111-1111", "expiry": "12/29"})),
                "12 to 19 digits",
            ),
            (
                create(json!({"pan": 4111111111111111u64, "expiry": "12/29"})),
                "card.pan\" is required",
            ),
            (
                create(json!({"pan": "4111111111111111", "expiry": "13/29"})),
                "card.expiry",
            ),
            (
                create(json!({"pan": "4111111111111111", "expiry": "12/29", "cvv": "123"})),
                "unknown field \"cvv\"",
            ),
            (
                json!({"action": "create", "tenant": "t1", "amountCents": 0, "currency": "EUR", "card": {}}),
                "amountCents",
            ),
            (
                json!({"action": "create", "tenant": "t1", "amountCents": 5, "currency": "eur", "card": {}}),
                "currency",
            ),
        ];
        for (event, expected) in cases {
            let e = parse(&event).unwrap_err();
            let msg = e.to_string();
            assert_eq!(e.code(), "InvalidRequest");
            assert!(msg.contains(expected), "{event} → {msg}");
            assert!(!msg.contains("4111"), "{msg}");
            assert!(!msg.contains("123\""), "{msg}");
        }
    }

    #[test]
    fn luhn_check() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("5555555555554444"));
        assert!(!luhn("4111111111111112"));
    }
}
