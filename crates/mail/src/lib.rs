//! Outgoing mail: one plain-text message to one person.
//!
//! With an SMTP URL (`smtps://user:pass@host:465`, `smtp://host:25`,
//! `smtp://host:587?tls=required`) each message goes to that server. Without one, each
//! message is written as an RFC 5322 file (`<time>-<id>.eml`, mode 0600) into the outbox
//! directory, atomically (written as `.partial`, synced, then renamed), for the operator to
//! read or hand to their own mail system.

use std::io::Write;
use std::path::{Path, PathBuf};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The configuration cannot be used (says which setting and why).
    #[error("{0}")]
    Config(String),
    /// The address or subject cannot go into a message.
    #[error("{0}")]
    Message(String),
    #[error("the SMTP server refused or could not be reached: {0}")]
    Smtp(String),
    #[error("cannot write the message into the outbox {}: {source}", .dir.display())]
    Outbox {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Where messages go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

/// How a message was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Smtp,
    /// Written to this file.
    Outbox(PathBuf),
}

impl Mailer {
    /// A mailer sending through `smtp_url` when it is set, else into `outbox`, from `from`
    /// (`Name <address>` or an address).
    pub fn new(smtp_url: Option<&str>, outbox: &Path, from: &str) -> Result<Mailer, MailError> {
        let from: Mailbox = from.parse().map_err(|e| {
            MailError::Config(format!(
                "mail.from {from:?} is not an email address ({e}): use \"Name <privacy@example.com>\" or \"privacy@example.com\""
            ))
        })?;
        let transport = match smtp_url.filter(|u| !u.trim().is_empty()) {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| {
                        MailError::Config(format!(
                            "mail.smtp_url is not usable ({e}): use smtps://user:password@host:465, smtp://host:25 or smtp://host:587?tls=required"
                        ))
                    })?
                    .build(),
            ),
            None => Transport::Outbox(outbox.to_path_buf()),
        };
        Ok(Mailer { transport, from })
    }

    /// Whether messages go to an SMTP server (else to the outbox directory).
    pub fn uses_smtp(&self) -> bool {
        matches!(self.transport, Transport::Smtp(_))
    }

    /// Sends `text` to `to` with `subject`.
    pub async fn send(&self, to: &str, subject: &str, text: &str) -> Result<Sent, MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Message(format!("{to:?} is not an email address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_string())
            .map_err(|e| MailError::Message(format!("the message cannot be built: {e}")))?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                Ok(Sent::Smtp)
            }
            Transport::Outbox(dir) => {
                let bytes = message.formatted();
                let dir = dir.clone();
                let path = write_outbox_file(&dir, &bytes)
                    .map_err(|source| MailError::Outbox { dir, source })?;
                Ok(Sent::Outbox(path))
            }
        }
    }
}

/// Writes one message file; small and rare enough to do in place.
fn write_outbox_file(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = format!("{millis}-{}.eml", uuid::Uuid::new_v4());
    let partial = dir.join(format!("{name}.partial"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let done = dir.join(name);
    std::fs::rename(&partial, &done)?;
    Ok(done)
}
