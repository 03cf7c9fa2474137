//! `thingsafe serve`: opens the data directory, makes sure an administrator can get in, and
//! runs the listeners until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use thingsafe_core::policy::{self, Policy, PublishedPolicy};
use thingsafe_core::{Authority, validate};
use thingsafe_http::{AppState, AuthSettings, HttpSettings, SETUP_TOKEN_META};
use thingsafe_store::{NewUser, Store, sqlite::SqliteStore};
use thingsafe_vault::{MasterKey, Vault};

use crate::config::{Config, LogFormat, PrivacyConfig, StoreConfig};

/// The opened data directory: key store and database.
pub struct DataDir {
    pub vault: Arc<Vault>,
    pub store: Arc<dyn Store>,
}

/// Opens (creating on first use) the data directory: master key, key store, database.
pub fn open_data_dir(dir: &Path, limits: &StoreConfig) -> anyhow::Result<DataDir> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let env_key = std::env::var("THINGSAFE_MASTER_KEY").ok();
    let (master, created) = MasterKey::load_or_create(dir, env_key.as_deref())?;
    if created {
        tracing::warn!(
            path = %dir.join("master.key").display(),
            "generated a new master key: keep a copy apart from the data and its backups; without it nothing can be read"
        );
    }
    let vault = Arc::new(Vault::open(dir, master)?);
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open_limited(
            dir,
            vault.clone(),
            (limits.max_size_mib > 0).then(|| u64::from(limits.max_size_mib) << 20),
        )
        .with_context(|| format!("cannot open the database in {}", dir.display()))?,
    );
    Ok(DataDir { vault, store })
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .expect("log.level was checked when the config loaded");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

/// The privacy policy: the operator's file, or the built-in default; checked, so that an
/// invalid policy stops start-up before anything is opened.
pub fn load_policy(config: &PrivacyConfig) -> anyhow::Result<Policy> {
    let path = &config.policy_file;
    if path.as_os_str().is_empty() {
        tracing::warn!(
            "using the built-in privacy policy: its controller and DPO contacts are placeholders; write your own and set privacy.policy_file (see docs/privacy.md)"
        );
        return Ok(Policy::builtin());
    }
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the privacy policy {} (config key privacy.policy_file)",
            path.display()
        )
    })?;
    policy::parse(&text).map_err(|e| {
        let line = text.lines().nth(e.line.saturating_sub(1)).unwrap_or("");
        anyhow::anyhow!(
            "invalid privacy policy {}: {e}\n  {} | {line}",
            path.display(),
            e.line
        )
    })
}

/// Outgoing mail: the SMTP server of `mail.smtp_url`, else `data/outbox/`; from `mail.from`
/// or the controller's email.
fn open_mailer(
    config: &Config,
    data_dir: &std::path::Path,
    policy: &Policy,
) -> anyhow::Result<thingsafe_mail::Mailer> {
    let from = match config.mail.from.trim() {
        "" => format!("{} <{}>", policy.controller.name, policy.controller.email),
        from => from.to_string(),
    };
    let outbox = data_dir.join("outbox");
    let mailer = thingsafe_mail::Mailer::new(Some(&config.mail.smtp_url), &outbox, &from)
        .map_err(|e| anyhow::anyhow!("{e} (config key mail.smtp_url / mail.from)"))?;
    if !mailer.uses_smtp() {
        tracing::info!(outbox = %outbox.display(), "mail.smtp_url is not set: messages are written to the outbox directory");
    }
    Ok(mailer)
}

/// Publishes the policy as a new version if its content changed since the last one.
pub async fn publish_policy(data: &DataDir, policy: Policy) -> anyhow::Result<PublishedPolicy> {
    let (version, new) = data
        .store
        .publish_policy(&policy.canonical())
        .await
        .context("cannot record the privacy policy's version")?;
    if new {
        tracing::info!(
            version = version.version,
            material = version.material,
            sha256 = %version.sha256,
            "published a new version of the privacy policy"
        );
        thingsafe_privacy::audit::Audit::new(thingsafe_privacy::audit::action::POLICY_PUBLISHED)
            .target("policy_version", version.version)
            .details(serde_json::json!({"sha256": version.sha256, "material": version.material}))
            .record(data.store.as_ref())
            .await;
    }
    tracing::info!(version = version.version, "privacy policy in force");
    Ok(PublishedPolicy { policy, version })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let rate_limits = Arc::new(thingsafe_core::rate_limit::DeviceRateLimits::new(
        config
            .limits
            .rate_limits()
            .map_err(|(key, why)| anyhow::anyhow!("{key}: {why}"))?,
    ));
    let policy = load_policy(&config.privacy)?;
    let data = open_data_dir(&config.data_dir, &config.store)?;
    let _lock = crate::backup::lock_data_dir(&config.data_dir)?;
    let policy = Arc::new(publish_policy(&data, policy).await?);
    let data_dir = std::fs::canonicalize(&config.data_dir)?;
    let reapplied = data
        .store
        .reapply_erasures()
        .await
        .context("cannot re-apply the erasures the key store records")?;
    if reapplied != Default::default() {
        tracing::warn!(
            tenants = reapplied.tenants,
            customers = reapplied.customers,
            users = reapplied.users,
            "the database held data of people, customers or tenants erased after it was backed up; their keys are destroyed and their rows are being removed again"
        );
    }

    let certificates = open_certificates(&config)?;

    let bind = |addr, key: &'static str| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {key} {addr}"))
    };
    let listener = bind(config.http.addr, "http.addr").await?;
    let addr = listener.local_addr()?;
    let mqtt_listener = match config.tls.required {
        true => None,
        false => Some(bind(config.mqtt.addr, "mqtt.addr").await?),
    };
    let (https_listener, mqtts_listener) = match &certificates {
        Some(_) => (
            Some(bind(config.http.tls_addr, "http.tls_addr").await?),
            Some(bind(config.mqtt.tls_addr, "mqtt.tls_addr").await?),
        ),
        None => (None, None),
    };
    // The port the console's ready-to-paste commands use: plain MQTT, or MQTT over TLS
    // when plain MQTT is off.
    let mqtt_port = match (&mqtt_listener, &mqtts_listener) {
        (Some(l), _) | (None, Some(l)) => l.local_addr()?.port(),
        (None, None) => config.mqtt.addr.port(),
    };
    let https_addr = https_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let public_url = match https_addr {
        Some(https) if config.tls.required && config.http.public_url.is_empty() => {
            format!("https://{https}")
        }
        _ => config.public_url_for(addr),
    };
    ensure_admin_access(&data, &public_url).await?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let purge_wanted = Arc::new(tokio::sync::Notify::new());
    let notices_wanted = Arc::new(tokio::sync::Notify::new());
    let mailer = Arc::new(open_mailer(&config, &data_dir, &policy.policy)?);
    let state = AppState {
        store: data.store.clone(),
        vault: data.vault.clone(),
        settings: Arc::new(HttpSettings {
            auth: AuthSettings {
                access_token_ttl_secs: config.auth.access_token_ttl_secs.into(),
                refresh_token_ttl_secs: config.auth.refresh_token_ttl_secs.into(),
                oauth2_access_token_ttl_secs: config.auth.oauth2_access_token_ttl_secs.into(),
                oauth2_refresh_token_ttl_secs: config.auth.oauth2_refresh_token_ttl_secs.into(),
                max_failed_logins: config.auth.max_failed_logins,
                lockout_secs: config.auth.lockout_secs.into(),
            },
            signup_enabled: config.signup.enabled,
            public_url: public_url.clone(),
            key_backup_keep_days: config.backup.keys_keep_days,
            backup_dir: config.backup.dir.clone(),
            exports_dir: data_dir.join(crate::tenant_exports::EXPORTS_DIR),
            mqtt_port,
            limits: thingsafe_http::AbuseLimitSettings {
                sign_in_per_minute: config.limits.sign_in_per_minute,
                sign_up_per_hour: config.limits.sign_up_per_hour,
                public_requests_per_hour: config.limits.public_requests_per_hour,
            },
            rate_limits: rate_limits.clone(),
        }),
        metrics,
        policy: policy.clone(),
        purge_wanted: purge_wanted.clone(),
        mailer,
        pending_sign_ins: Default::default(),
        notices_wanted: notices_wanted.clone(),
    };
    tokio::spawn(crate::tenant_exports::run(
        data.store.clone(),
        data.vault.clone(),
        policy.clone(),
        data_dir.join(crate::tenant_exports::EXPORTS_DIR),
        config.backup.tenant_export_interval_seconds,
    ));
    tokio::spawn(crate::jobs::shred_closed_requests(data.store.clone()));
    tokio::spawn(crate::jobs::deliver_notices(
        data.store.clone(),
        notices_wanted,
    ));
    tokio::spawn(crate::jobs::sweep_retention(data.store.clone(), policy));
    tokio::spawn(crate::jobs::purge_erasures(
        data.store.clone(),
        purge_wanted,
    ));
    let api = thingsafe_http::router(state);
    let plain_http = match https_addr {
        Some(https) if config.tls.required => thingsafe_http::redirect_to_https(
            https.port(),
            public_url
                .starts_with("https://")
                .then(|| public_url.clone()),
        ),
        _ => api.clone(),
    };
    // Registered before the listeners are announced: from then on SIGTERM and SIGINT stop
    // the server cleanly and SIGHUP reloads the certificate, instead of the default action
    // of ending the process at once.
    let shutdown = shutdown_signal()?;
    let hangups = match &certificates {
        Some(_) => Some(hangup_signals()?),
        None => None,
    };

    // The HTTP API's line comes last: tests and scripts read the lines up to it.
    tracing::info!(data_dir = %data_dir.display(), "data directory");
    if let Some(mqtt) = &mqtt_listener {
        tracing::info!("MQTT listening on mqtt://{}", mqtt.local_addr()?);
    }
    if let Some(mqtts) = &mqtts_listener {
        tracing::info!("MQTT over TLS listening on mqtts://{}", mqtts.local_addr()?);
    }
    if let Some(https) = https_addr {
        tracing::info!("HTTPS listening on https://{https}");
    }
    match https_addr {
        Some(https) if config.tls.required => tracing::info!(
            "HTTP API listening on http://{addr} (TLS required: redirects to https://{https})"
        ),
        _ => tracing::info!("HTTP API listening on http://{addr}"),
    }

    // One signal stops every listener; each finishes what is in flight.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mqtt_settings = thingsafe_mqtt::MqttSettings {
        max_packet_size: config.mqtt.max_packet_size,
        receive_maximum: config.mqtt.receive_maximum,
        connect_timeout: std::time::Duration::from_secs(config.mqtt.connect_timeout_secs.into()),
        max_connections: config.mqtt.max_connections as usize,
        connects_per_second: config.limits.mqtt_connects_per_second,
        rate_limits,
        ..thingsafe_mqtt::MqttSettings::default()
    };
    let backups = tokio::spawn(crate::scheduled_backups::run(
        config.clone(),
        data.vault.clone(),
        data.store.clone(),
        stop_rx.clone(),
    ));
    let http = async {
        axum::serve(
            listener,
            plain_http.into_make_service_with_connect_info::<thingsafe_http::ClientAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx.clone()))
        .await
        .context("HTTP server failed")
    };
    let https = async {
        match (https_listener, &certificates) {
            (Some(listener), Some(certs)) => thingsafe_http::serve_https(
                listener,
                certs.acceptor(&[thingsafe_tls::ALPN_HTTP1]),
                api,
                stopped(stop_rx.clone()),
            )
            .await
            .context("HTTPS server failed"),
            _ => Ok(()),
        }
    };
    let mqtt = async {
        if let Some(listener) = mqtt_listener {
            let store = data.store.clone();
            let settings = mqtt_settings.clone();
            thingsafe_mqtt::serve(listener, store, settings, stopped(stop_rx.clone())).await;
        }
    };
    let mqtts = async {
        if let (Some(listener), Some(certs)) = (mqtts_listener, &certificates) {
            let store = data.store.clone();
            let settings = mqtt_settings.clone();
            let tls = certs.device_acceptor();
            thingsafe_mqtt::serve_tls(listener, tls, store, settings, stopped(stop_rx.clone()))
                .await;
        }
    };
    let reloads = async {
        if let (Some(certs), Some(hangups)) = (&certificates, hangups) {
            let every = std::time::Duration::from_secs(config.tls.reload_check_secs.into());
            tokio::select! {
                () = watch_certificates(certs.clone(), hangups, every) => {}
                () = stopped(stop_rx.clone()) => {}
            }
        }
    };
    let (http, https, (), (), ()) = tokio::join!(http, https, mqtt, mqtts, reloads);
    http?;
    https?;
    let _ = backups.await;
    tracing::info!("stopped");
    Ok(())
}

/// The certificate the TLS listeners present, when they are on; a file that cannot be used
/// stops start-up, naming it and the config key.
fn open_certificates(config: &Config) -> anyhow::Result<Option<Arc<thingsafe_tls::Certificates>>> {
    if !config.tls.enabled {
        return Ok(None);
    }
    let source = if config.tls.cert.as_os_str().is_empty() {
        thingsafe_tls::CertificateSource::Generated {
            dir: config.data_dir.join("tls"),
            hostnames: config.tls.hostnames.clone(),
        }
    } else {
        thingsafe_tls::CertificateSource::Files {
            cert: config.tls.cert.clone(),
            key: config.tls.key.clone(),
        }
    };
    let certificates = thingsafe_tls::Certificates::open(&source).map_err(|e| {
        let keys = match source {
            thingsafe_tls::CertificateSource::Files { .. } => "config keys tls.cert and tls.key",
            thingsafe_tls::CertificateSource::Generated { .. } => "the generated certificate",
        };
        anyhow::anyhow!("TLS certificate ({keys}): {e}")
    })?;
    let summary = certificates.summary();
    let kind = match certificates.is_generated() {
        true => "generated, self-signed: give this file to clients as their CA",
        false => "from tls.cert",
    };
    tracing::info!(
        not_after = summary.not_after.as_deref().unwrap_or("unknown"),
        "TLS certificate: {} ({kind}; SHA-256 fingerprint {})",
        certificates.cert_path().display(),
        summary.fingerprint
    );
    Ok(Some(certificates))
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangups = ();

fn hangup_signals() -> anyhow::Result<Hangups> {
    #[cfg(unix)]
    return tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP");
    #[cfg(not(unix))]
    Ok(())
}

/// Reloads the certificate on SIGHUP, and when its files change (looked at `every`; zero:
/// never).
async fn watch_certificates(
    certs: Arc<thingsafe_tls::Certificates>,
    mut hangups: Hangups,
    every: std::time::Duration,
) {
    let mut poll = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup = hangups.recv();
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        tokio::select! {
            Some(()) = hangup => {
                tracing::info!("SIGHUP: reloading the TLS certificate");
                let _ = certs.reload();
            }
            _ = poll.tick(), if !every.is_zero() => {
                let _ = certs.reload_if_changed();
            }
        }
    }
}

/// Makes sure someone can administer the installation, without any default password:
/// the system administrator from THINGSAFE_ADMIN_EMAIL/THINGSAFE_ADMIN_PASSWORD, or else a
/// one-time setup token printed now.
async fn ensure_admin_access(data: &DataDir, public_url: &str) -> anyhow::Result<()> {
    if data.store.sysadmin_exists().await? {
        return Ok(());
    }
    if let (Ok(email), Ok(password)) = (
        std::env::var("THINGSAFE_ADMIN_EMAIL"),
        std::env::var("THINGSAFE_ADMIN_PASSWORD"),
    ) {
        create_sysadmin(data, &email, &password).await?;
        tracing::info!("created the system administrator from THINGSAFE_ADMIN_EMAIL");
        return Ok(());
    }
    let token = thingsafe_vault::random_token(24);
    let index = data.vault.blind_index("setup.token", token.as_bytes());
    data.store
        .set_meta(SETUP_TOKEN_META, Some(index.to_vec()))
        .await?;
    eprintln!(
        "\n  No system administrator exists yet. Create one with this one-time setup token:\n\n    \
         curl -X POST {public_url}/api/noauth/setup -H 'Content-Type: application/json' \\\n      \
         -d '{{\"setupToken\":\"{token}\",\"email\":\"you@example.com\",\"password\":\"<at least 10 characters>\"}}'\n\n  \
         or run: thingsafe admin create-sysadmin --email you@example.com  (password on stdin)\n"
    );
    Ok(())
}

pub async fn create_sysadmin(data: &DataDir, email: &str, password: &str) -> anyhow::Result<()> {
    let email = validate::email(email)?;
    validate::new_password(password, &email)?;
    let password = password.to_string();
    let hash =
        tokio::task::spawn_blocking(move || thingsafe_vault::password::hash(&password)).await?;
    data.store
        .create_sysadmin(NewUser {
            email,
            password_hash: Some(hash),
            authority: Authority::SysAdmin,
            customer_id: None,
            first_name: None,
            last_name: None,
            birth_date: None,
        })
        .await?;
    data.store.set_meta(SETUP_TOKEN_META, None).await?;
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C). The handlers are installed now, not
/// at the first poll, so that a signal right after start-up is not the default kill.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut terminate, mut interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}
