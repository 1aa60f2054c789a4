//! The `email` channel: a plain-text email over SMTP (lettre), with STARTTLS required or, for a relay on
//! this machine, no TLS. The stored payload is `{"subject", "body"}`; sender and recipients come from the
//! config at each attempt.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use crate::alerts::channels::{tag, Channel, Failure};
use crate::alerts::Notice;
use crate::config::{ChannelKind, EmailChannel, Secret, SmtpSecurity};

#[derive(Debug)]
pub struct Email {
    config: EmailChannel,
    timeout: Duration,
}

impl Email {
    pub fn new(config: EmailChannel, timeout: Duration) -> Self {
        Self { config, timeout }
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
        self.config.password.iter().collect()
    }
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
