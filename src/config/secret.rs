//! `Secret`: a value that must never be shown, such as a token, a webhook URL or an SMTP password. It prints
//! itself as `***` everywhere (`Debug`, `Display`, serialization, so `check-config` and API answers too);
//! the one way to read it is `expose`, at the single place that sends it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a secret is shown wherever it is shown.
pub const REDACTED: &str = "***";

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the code that must send it (an Authorization header, an SMTP login).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_itself() {
        let secret: Secret =
            serde_json::from_str("\"https://discord.com/api/webhooks/1/s3cr3t\"").unwrap();
        assert_eq!(secret.expose(), "https://discord.com/api/webhooks/1/s3cr3t");
        for shown in [
            format!("{secret}"),
            format!("{secret:?}"),
            format!("{secret:#?}"),
            serde_json::to_string(&secret).unwrap(),
            serde_json::to_string_pretty(&serde_json::json!({ "url": secret })).unwrap(),
        ] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }
}
