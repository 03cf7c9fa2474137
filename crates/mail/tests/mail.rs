//! Messages reach a real SMTP server (Python's `aiosmtpd`), or the outbox directory when no
//! server is configured. The SMTP test needs `aiosmtpd` for `python3` (`pip install
//! aiosmtpd`), or `THINGSAFE_PYTHON` naming an interpreter that has it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thingsafe_mail::{Mailer, Sent};

#[tokio::test]
async fn without_smtp_each_message_is_an_eml_file_in_the_outbox_readable_only_by_us() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let mailer = Mailer::new(None, &outbox, "Privacy <privacy@example.test>").unwrap();
    assert!(!mailer.uses_smtp());
    let sent = mailer
        .send("ada@example.test", "Your request", "Your code is 123456.\n")
        .await
        .unwrap();
    let Sent::Outbox(path) = sent else {
        panic!("sent over SMTP without a URL")
    };
    assert_eq!(path.parent().unwrap(), outbox);
    assert!(path.extension().is_some_and(|e| e == "eml"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("From: Privacy <privacy@example.test>"),
        "{text}"
    );
    assert!(text.contains("To: ada@example.test"), "{text}");
    assert!(text.contains("Subject: Your request"), "{text}");
    assert!(text.contains("Your code is 123456."), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let names: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(names.len(), 1, "no partial file is left behind");
}

#[test]
fn bad_settings_and_addresses_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let e = Mailer::new(None, dir.path(), "not an address")
        .err()
        .unwrap();
    assert!(e.to_string().contains("mail.from"), "{e}");
    let e = Mailer::new(Some("ftp://host"), dir.path(), "a@example.test")
        .err()
        .unwrap();
    assert!(e.to_string().contains("mail.smtp_url"), "{e}");
    let mailer = Mailer::new(None, dir.path(), "a@example.test").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let e = rt.block_on(mailer.send("nobody", "s", "t")).err().unwrap();
    assert!(
        e.to_string().contains("\"nobody\" is not an email address"),
        "{e}"
    );
}

fn python_with_aiosmtpd() -> Option<String> {
    let python = std::env::var("THINGSAFE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn with_an_smtp_url_messages_reach_the_smtp_server() {
    let Some(python) = python_with_aiosmtpd() else {
        let message = "SKIP: with_an_smtp_url_messages_reach_the_smtp_server needs aiosmtpd for python3 (pip install aiosmtpd)";
        if std::env::var("THINGSAFE_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{message}");
        }
        println!("{message}");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The Debugging handler prints every message it receives on stdout.
    let mut child = Command::new(python)
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Debugging",
            "-l",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("smtp://127.0.0.1:{port}");
    let mailer = Mailer::new(
        Some(&url),
        &dir.path().join("outbox"),
        "privacy@example.test",
    )
    .unwrap();
    assert!(mailer.uses_smtp());
    let sent = mailer
        .send(
            "grace@example.test",
            "Request received",
            "We have your request.\n",
        )
        .await
        .unwrap();
    assert_eq!(sent, Sent::Smtp);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("We have your request."))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the SMTP server did not print the message: {seen:?}"));
        seen.push(line);
    }
    assert!(
        seen.iter().any(|l| l.contains("Subject: Request received")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("To: grace@example.test")),
        "{seen:?}"
    );
    assert!(
        !dir.path().join("outbox").exists(),
        "nothing went to the outbox"
    );
}
