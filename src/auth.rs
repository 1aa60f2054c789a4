//! Tokens and roles, without a web framework: the three roles in order (`read` < `operate` < `admin`), the
//! tokens loaded from where the config says (an environment variable or a file, never the config itself),
//! and the constant-time lookup of the role a presented bearer token grants.

use std::fmt;

use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, Secret, TokenSource};

/// Shorter tokens are refused at start: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;
/// Tokens with fewer different characters are refused at start: `aaaaaaaaaaaaaaaa` or `passwordpassword` is
/// long enough but guessable. A random token passes: 32 hex characters have fewer than 8 different ones about
/// once in 10^9 draws (16 hex characters about once in 90: use 32, or `hale token`).
pub const MIN_DISTINCT_CHARS: usize = 8;
/// Random bytes in a token `hale token` prints (256 bits), written as 64 hex characters.
const GENERATED_TOKEN_BYTES: usize = 32;

/// What a caller may do. Each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read any answer (from loopback no token is needed).
    Read,
    /// Change things: manual heal, maintenance windows, MCP tool calls, workflow runs.
    Operate,
    /// Backups and the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Operate, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Operate => "operate",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("auth.tokens.{role}: {source_desc} is not set")]
    Missing { role: Role, source_desc: String },
    #[error(
        "auth.tokens.{role}: {source_desc} is empty; put a token in it (`hale token` prints one)"
    )]
    Empty { role: Role, source_desc: String },
    #[error("auth.tokens.{role}: cannot read {source_desc}: {reason}")]
    Unreadable {
        role: Role,
        source_desc: String,
        reason: String,
    },
    #[error(
        "auth.tokens.{role}: the token in {source_desc} is shorter than {MIN_TOKEN_LEN} characters"
    )]
    TooShort { role: Role, source_desc: String },
    #[error(
        "auth.tokens.{role}: the token in {source_desc} contains whitespace or control characters"
    )]
    Malformed { role: Role, source_desc: String },
    #[error(
        "auth.tokens.{role}: the token in {source_desc} has fewer than {MIN_DISTINCT_CHARS} different characters, so it can be guessed; `hale token` prints a good one"
    )]
    TooPlain { role: Role, source_desc: String },
    #[error("auth.tokens.{role}: the token in {source_desc} is the same as the {other} token; give each role its own")]
    Reused {
        role: Role,
        other: Role,
        source_desc: String,
    },
}

/// The tokens in force, one per configured role.
#[derive(Clone, Default)]
pub struct Tokens {
    by_role: Vec<(Role, Secret)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("roles", &self.roles())
            .finish()
    }
}

impl Tokens {
    /// Reads every configured token. A file's trailing newline is not part of its token.
    pub fn load(config: &AuthConfig) -> Result<Self, TokenError> {
        let mut by_role: Vec<(Role, Secret)> = Vec::new();
        for (role, (_, source)) in Role::ALL.into_iter().zip(config.sources()) {
            let Some(source) = source else { continue };
            let source_desc = source.describe();
            let raw = match source {
                TokenSource::Env(name) => std::env::var(name).map_err(|_| TokenError::Missing {
                    role,
                    source_desc: source_desc.clone(),
                })?,
                TokenSource::File(path) => {
                    std::fs::read_to_string(path).map_err(|e| TokenError::Unreadable {
                        role,
                        source_desc: source_desc.clone(),
                        reason: e.kind().to_string(),
                    })?
                }
            };
            let token = raw.trim_end_matches(['\n', '\r']);
            if token.is_empty() {
                return Err(TokenError::Empty { role, source_desc });
            }
            if token.chars().count() < MIN_TOKEN_LEN {
                return Err(TokenError::TooShort { role, source_desc });
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(TokenError::Malformed { role, source_desc });
            }
            if !varied(token) {
                return Err(TokenError::TooPlain { role, source_desc });
            }
            if let Some((other, _)) = by_role
                .iter()
                .find(|(_, known)| same(known.expose(), token))
            {
                return Err(TokenError::Reused {
                    role,
                    other: *other,
                    source_desc,
                });
            }
            by_role.push((role, Secret::new(token)));
        }
        Ok(Self { by_role })
    }

    /// Tokens given directly, for tests.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Role, String)>) -> Self {
        Self {
            by_role: pairs
                .into_iter()
                .map(|(r, t)| (r, Secret::new(t)))
                .collect(),
        }
    }

    /// The roles that have a token.
    pub fn roles(&self) -> Vec<Role> {
        self.by_role.iter().map(|(role, _)| *role).collect()
    }

    pub fn has(&self, role: Role) -> bool {
        self.by_role.iter().any(|(r, _)| *r == role)
    }

    /// The role a presented token grants, if any. Every configured token is compared, in constant time, so
    /// the time taken says nothing about which one (or how much of one) matched.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let mut granted = None;
        for (role, token) in &self.by_role {
            if same(token.expose(), presented) {
                granted = Some(*role);
            }
        }
        granted
    }

    /// The token of a role, for hale's own clients (`hale verify`, `hale status`) that call a running hale.
    pub fn token(&self, role: Role) -> Option<&Secret> {
        self.by_role
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, token)| token)
    }
}

/// At least `MIN_DISTINCT_CHARS` different characters.
fn varied(token: &str) -> bool {
    let mut seen: Vec<char> = Vec::with_capacity(MIN_DISTINCT_CHARS);
    for c in token.chars() {
        if !seen.contains(&c) {
            seen.push(c);
            if seen.len() >= MIN_DISTINCT_CHARS {
                return true;
            }
        }
    }
    false
}

/// A new random token of 256 bits, as 64 lower-case hex characters: what `hale token` prints, and always
/// one `Tokens::load` accepts.
pub fn generate_token() -> String {
    loop {
        let bytes: [u8; GENERATED_TOKEN_BYTES] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // 64 random hex characters have fewer than 8 different ones far less than once in 10^20 draws; the
        // check keeps the promise anyway.
        if varied(&token) {
            return token;
        }
    }
}

/// Constant-time equality (in the length of the shorter input; lengths are not secret).
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RoleTokens;

    fn config(read: Option<TokenSource>, admin: Option<TokenSource>) -> AuthConfig {
        AuthConfig {
            tokens: RoleTokens {
                read,
                operate: None,
                admin,
            },
            open_reads_on_loopback: true,
        }
    }

    #[test]
    fn tokens_come_from_env_or_file_and_grant_their_role() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.token");
        std::fs::write(&file, "admin-token-0123456789\n").unwrap();
        std::env::set_var("HALE_TEST_READ_TOKEN_A", "read-token-0123456789");
        let tokens = Tokens::load(&config(
            Some(TokenSource::Env("HALE_TEST_READ_TOKEN_A".into())),
            Some(TokenSource::File(file)),
        ))
        .unwrap();
        assert_eq!(tokens.roles(), [Role::Read, Role::Admin]);
        assert_eq!(tokens.role_of("read-token-0123456789"), Some(Role::Read));
        assert_eq!(tokens.role_of("admin-token-0123456789"), Some(Role::Admin));
        assert_eq!(tokens.role_of("admin-token-012345678"), None);
        assert_eq!(tokens.role_of(""), None);
        assert!(!format!("{tokens:?}").contains("token-0123"));
    }

    #[test]
    fn bad_tokens_are_refused_without_showing_them() {
        std::env::set_var("HALE_TEST_SHORT_TOKEN", "short");
        let err = Tokens::load(&config(
            Some(TokenSource::Env("HALE_TEST_SHORT_TOKEN".into())),
            None,
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "auth.tokens.read: the token in environment variable HALE_TEST_SHORT_TOKEN is shorter than 16 characters"
        );
        let missing = Tokens::load(&config(
            Some(TokenSource::Env("HALE_TEST_UNSET_TOKEN".into())),
            None,
        ))
        .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "auth.tokens.read: environment variable HALE_TEST_UNSET_TOKEN is not set"
        );
        std::env::set_var("HALE_TEST_SAME_TOKEN", "same-token-0123456789");
        let reused = Tokens::load(&config(
            Some(TokenSource::Env("HALE_TEST_SAME_TOKEN".into())),
            Some(TokenSource::Env("HALE_TEST_SAME_TOKEN".into())),
        ))
        .unwrap_err();
        assert!(!reused.to_string().contains("same-token"), "{reused}");
        assert!(reused.to_string().contains("same as the read token"));
    }

    #[test]
    fn generated_tokens_are_256_bits_of_hex_and_always_accepted() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        for token in [&a, &b] {
            assert_eq!(token.len(), 64, "{token}");
            assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
            assert!(varied(token), "{token}");
        }
        assert!(!varied("aaaaaaaaaaaaaaaa"));
        assert!(!varied("passwordpassword"));
        assert!(varied("read-token-aaaaaaaaaaaaaaaa"));
    }
}
