//! The `email` channel: a plain-text email over SMTP (lettre), with STARTTLS required or, for a relay on
//! this machine, no TLS. The stored payload is `{"subject", "body"}`; sender and recipients come from the
//! config at each attempt.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use crate::alerts::channels::{base64, tag, Channel, Failure};
use crate::alerts::Notice;
use crate::config::{ChannelKind, EmailChannel, Secret, SmtpSecurity};

#[derive(Debug)]
pub struct Email {
    config: EmailChannel,
    timeout: Duration,
    /// What to scrub from an SMTP error besides the password: the forms the credentials travel in.
    secrets: Vec<Secret>,
}

impl Email {
    pub fn new(config: EmailChannel, timeout: Duration) -> Self {
        let secrets = credential_forms(config.username.as_deref(), config.password.as_ref());
        Self {
            config,
            timeout,
            secrets,
        }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, Failure> {
        let host = self.config.smtp_host.as_str();
        let builder = match self.config.security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| Failure::permanent(format!("smtp {host}: {e}")))?,
            SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder
            .port(self.config.smtp_port)
            .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&self.config.username, &self.config.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(builder.build())
    }

    fn message(&self, subject: &str, body: &str) -> Result<Message, Failure> {
        let mailbox = |raw: &str| {
            raw.parse::<Mailbox>()
                .map_err(|e| Failure::permanent(format!("{raw:?} is not an email address: {e}")))
        };
        let mut builder = Message::builder()
            .from(mailbox(&self.config.from)?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.config.to {
            builder = builder.to(mailbox(to)?);
        }
        builder
            .body(body.to_owned())
            .map_err(|e| Failure::permanent(format!("cannot build the email: {e}")))
    }
}

/// `[hale CRITICAL] target_down: api is down`, `[hale RESOLVED] ...` once resolved.
pub fn subject(notice: &Notice) -> String {
    let subject = format!("[hale {}] {}: {}", tag(notice), notice.rule, notice.summary);
    // One line: a summary with a line break must not start a header of its own.
    subject.replace(['\r', '\n'], " ")
}

/// The plain-text body.
pub fn body(notice: &Notice) -> String {
    let mut body = format!(
        "{}\n\nrule:      {}\ntarget:    {}\nlevel:     {}\nevent:     {}\nfired at:  {}\n",
        notice.summary,
        notice.rule,
        notice.target,
        notice.level.as_str(),
        notice.kind.as_str(),
        notice.fired_at.to_rfc3339(),
    );
    if let Some(resolved_at) = notice.resolved_at {
        body.push_str(&format!("resolved:  {}\n", resolved_at.to_rfc3339()));
    }
    if notice.suppressed > 0 {
        body.push_str(&format!("held back: {} repeats\n", notice.suppressed));
    }
    if !notice.description.is_empty() {
        body.push_str(&format!("\n{}\n", notice.description));
    }
    if !notice.generator_url.is_empty() {
        body.push_str(&format!("\n{}\n", notice.generator_url));
    }
    body.push_str("\n-- \nsent by hale\n");
    body
}

impl Channel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn payload(&self, notice: &Notice) -> String {
        json!({ "subject": subject(notice), "body": body(notice) }).to_string()
    }

    fn deliver<'a>(&'a self, payload: &'a str) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let value: serde_json::Value = serde_json::from_str(payload)
                .map_err(|e| Failure::permanent(format!("malformed email payload: {e}")))?;
            let subject = value["subject"].as_str().unwrap_or_default();
            let body = value["body"].as_str().unwrap_or_default();
            let message = self.message(subject, body)?;
            let transport = self.transport()?;
            match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(Failure::permanent(smtp_error(&e))),
                Err(e) => Err(Failure::transient(smtp_error(&e))),
            }
        })
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.secrets.iter().collect()
    }
}

/// The password, and the strings SMTP authentication sends: `AUTH PLAIN` sends
/// base64(`authzid\0user\0password`), with an empty or repeated authzid, and `AUTH LOGIN` sends base64(user)
/// and base64(password) on their own lines. `scrub` hides each of them in clear and in base64; the user's
/// own base64 forms are listed as they are, since the user name in clear is not a secret.
fn credential_forms(user: Option<&str>, password: Option<&Secret>) -> Vec<Secret> {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Vec::new();
    };
    let mut forms = vec![password.clone()];
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        let pass = password.expose();
        forms.extend([
            Secret::new(format!("\0{user}\0{pass}")),
            Secret::new(format!("{user}\0{user}\0{pass}")),
            Secret::new(format!("{user}\0{pass}")),
        ]);
        // A very short user name encodes to a few characters that could match ordinary words.
        let encoded_user = base64(user.as_bytes());
        let unpadded = encoded_user.trim_end_matches('=').to_owned();
        if unpadded.len() >= 6 {
            forms.push(Secret::new(encoded_user));
            forms.push(Secret::new(unpadded));
        }
    }
    forms
}

fn smtp_error(err: &lettre::transport::smtp::Error) -> String {
    let mut text = format!("smtp: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
