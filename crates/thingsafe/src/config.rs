//! Settings: built-in defaults, then the TOML file given with `--config`, then environment
//! variables. Every key has one: `http.addr` ↔ `THINGSAFE_HTTP_ADDR`, `data_dir` ↔
//! `THINGSAFE_DATA_DIR`. A bad value stops start-up with the key, the source and what is
//! allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "THINGSAFE_";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, the key store and the master key live.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub signup: SignupConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub privacy: PrivacyConfig,
    pub backup: BackupConfig,
    pub store: StoreConfig,
    pub tls: TlsConfig,
    pub limits: LimitsConfig,
    pub mail: MailConfig,
}

/// Abuse limits per client address (0: no limit).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Sign-in attempts (API, console, OAuth2 token endpoint) per minute.
    pub sign_in_per_minute: u32,
    /// Sign-ups per hour.
    pub sign_up_per_hour: u32,
    /// Privacy requests without an account and password resets per hour (each sends mail).
    pub public_requests_per_hour: u32,
    /// New MQTT connections per second, with bursts of ten times as many.
    pub mqtt_connects_per_second: u32,
    /// Messages one device may send, in ThingsBoard's notation (`"200:1,6000:60"`: 200 a
    /// second and 6,000 a minute); empty: no limit. MQTT and HTTP together.
    pub device_messages: String,
    /// Telemetry data points one device may send.
    pub device_telemetry_data_points: String,
    /// Messages all devices of one tenant may send together.
    pub tenant_messages: String,
}

impl LimitsConfig {
    /// The device and tenant rate limits, parsed; the key that does not parse and why.
    pub fn rate_limits(
        &self,
    ) -> Result<thingsafe_core::rate_limit::RateLimitSettings, (&'static str, String)> {
        let parse = |key: &'static str, raw: &str| raw.parse().map_err(|why| (key, why));
        Ok(thingsafe_core::rate_limit::RateLimitSettings {
            device_messages: parse("limits.device_messages", &self.device_messages)?,
            device_telemetry_data_points: parse(
                "limits.device_telemetry_data_points",
                &self.device_telemetry_data_points,
            )?,
            tenant_messages: parse("limits.tenant_messages", &self.tenant_messages)?,
        })
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            sign_in_per_minute: 20,
            sign_up_per_hour: 20,
            public_requests_per_hour: 10,
            mqtt_connects_per_second: 200,
            device_messages: "1000:1,30000:60".into(),
            device_telemetry_data_points: "20000:1,600000:60".into(),
            tenant_messages: String::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server: `smtps://user:password@host:465`, `smtp://host:25`,
    /// `smtp://host:587?tls=required`; empty: messages are written to `data/outbox/`.
    pub smtp_url: String,
    /// The sender; empty: the controller's email from the privacy policy.
    pub from: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The TLS listeners (`mqtt.tls_addr`, `http.tls_addr`).
    pub enabled: bool,
    /// Plain MQTT off, plain HTTP only redirecting to HTTPS.
    pub required: bool,
    /// The operator's certificate chain (PEM, leaf first); empty: a generated self-signed
    /// one in `data/tls/`.
    pub cert: PathBuf,
    /// The certificate's private key (PEM); set with `cert`.
    pub key: PathBuf,
    /// Host names (or IP addresses) the generated certificate names, besides `localhost`
    /// and `127.0.0.1`.
    pub hostnames: Vec<String>,
    /// Seconds between looks at the certificate files for a change; 0: only on SIGHUP.
    pub reload_check_secs: u32,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            required: false,
            cert: PathBuf::new(),
            key: PathBuf::new(),
            hostnames: Vec::new(),
            reload_check_secs: 5,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Where `thingsafe backup` and the schedule write backups. Keep it off the data
    /// directory's disk.
    pub dir: PathBuf,
    /// When `thingsafe serve` makes backups by itself.
    pub schedule: BackupSchedule,
    /// Time of day of scheduled backups, `HH:MM`, UTC.
    pub time: String,
    /// Data backups kept in `dir`; older ones are deleted after a new one succeeds.
    pub keep: u32,
    /// Days a key-store backup is kept: the erasure window.
    pub keys_keep_days: u32,
    /// Seconds between the attempts of a failed scheduled backup (3 attempts in all).
    pub retry_delay_secs: u32,
    /// For tests: when above 0, a scheduled backup runs every this many seconds, whatever
    /// `schedule` says.
    pub interval_seconds: u32,
    /// For tests: when above 0, every tenant that opted into scheduled exports gets one
    /// every this many seconds, whatever its daily or weekly choice says.
    pub tenant_export_interval_seconds: u32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackupSchedule {
    Off,
    Daily,
    /// Sundays.
    Weekly,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: PathBuf::from("./backups"),
            schedule: BackupSchedule::Daily,
            time: "03:00".into(),
            keep: 7,
            keys_keep_days: 7,
            retry_delay_secs: 300,
            interval_seconds: 0,
            tenant_export_interval_seconds: 0,
        }
    }
}

impl BackupConfig {
    /// `time` as hour and minute (checked when the config loads).
    pub fn time_of_day(&self) -> Result<(u8, u8), String> {
        let bad = || {
            format!(
                "{:?} is not a time of day: use HH:MM, 00:00 to 23:59 (UTC)",
                self.time
            )
        };
        let (h, m) = self.time.split_once(':').ok_or_else(bad)?;
        let (h, m): (u8, u8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 || self.time.len() != 5 {
            return Err(bad());
        }
        Ok((h, m))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Largest size of the database in MiB; 0: no limit but the disk. Beyond it writes are
    /// refused as on a full disk (HTTP 507, no PUBACK) until data is deleted.
    pub max_size_mib: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP listener (REST API, device HTTP API).
    pub addr: SocketAddr,
    /// Address of the HTTPS listener (the same API over TLS).
    pub tls_addr: SocketAddr,
    /// The URL people reach the server at, for links we hand out; empty: `http://{addr}`.
    pub public_url: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Address of the MQTT listener (ThingsBoard's device API, MQTT 3.1.1 and 5).
    pub addr: SocketAddr,
    /// Address of the MQTT over TLS listener.
    pub tls_addr: SocketAddr,
    /// The largest MQTT packet accepted, in bytes.
    pub max_packet_size: u32,
    /// Messages of one connection being stored at once (MQTT 5 Receive Maximum).
    pub receive_maximum: u16,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u32,
    /// Most MQTT connections at once.
    pub max_connections: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SignupConfig {
    /// Self-service sign-up: anyone may create a tenant.
    pub enabled: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub access_token_ttl_secs: u32,
    pub refresh_token_ttl_secs: u32,
    /// Lifetime of OAuth2 access tokens (short: they are not tied to a session).
    pub oauth2_access_token_ttl_secs: u32,
    /// Lifetime of OAuth2 refresh tokens (each use replaces it).
    pub oauth2_refresh_token_ttl_secs: u32,
    /// Failed sign-ins in a row that lock an account; 1 or more.
    pub max_failed_logins: u32,
    pub lockout_secs: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The privacy policy (`privacy.toml`); empty: the built-in default.
    pub policy_file: PathBuf,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `thingsafe_http=debug,info`, ...
    pub level: String,
    pub format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            http: HttpConfig::default(),
            mqtt: MqttConfig::default(),
            signup: SignupConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            privacy: PrivacyConfig::default(),
            mail: MailConfig::default(),
            backup: BackupConfig::default(),
            store: StoreConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_url: String::new(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
            tls_addr: SocketAddr::from(([127, 0, 0, 1], 8883)),
            // ThingsBoard's transport.mqtt.netty.max_payload_size.
            max_packet_size: 65_536,
            receive_maximum: 64,
            connect_timeout_secs: 10,
            max_connections: 10_000,
        }
    }
}

impl Default for SignupConfig {
    fn default() -> Self {
        SignupConfig { enabled: true }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        // ThingsBoard's token lifetimes.
        AuthConfig {
            access_token_ttl_secs: 9000,
            refresh_token_ttl_secs: 604_800,
            oauth2_access_token_ttl_secs: 3600,
            oauth2_refresh_token_ttl_secs: 2_592_000,
            max_failed_logins: 5,
            lockout_secs: 900,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Loads defaults, then `file`, then the environment (`vars`), and checks the result.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = toml::Table::try_from(Config::default()).expect("defaults serialise");
        let keys = leaf_keys(&table);
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            let from_file: toml::Table = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
            merge(&mut table, from_file);
        }
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let mut from_env = Vec::new();
        for (key, default) in &keys {
            let var = env_name(key);
            if let Some((_, raw)) = vars.iter().find(|(k, _)| *k == var) {
                let value = parse_env(raw, default).map_err(|allowed| {
                    anyhow::anyhow!("{var}={raw:?} (config key {key}): {allowed}")
                })?;
                set(&mut table, key, value);
                from_env.push((key.clone(), var));
            }
        }
        let source = |path: &str| {
            from_env
                .iter()
                .find(|(k, _)| k == path)
                .map(|(_, var)| format!(" (from {var})"))
                .or_else(|| file.map(|f| format!(" (in {})", f.display())))
                .unwrap_or_default()
        };
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                anyhow::anyhow!("config key {path}{}: {}", source(&path), e.inner())
            })?;
        config
            .check()
            .map_err(|(key, why)| anyhow::anyhow!("config key {key}{}: {why}", source(key)))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.auth.max_failed_logins == 0 {
            return Err(("auth.max_failed_logins", "must be 1 or more".into()));
        }
        if self.auth.oauth2_access_token_ttl_secs == 0
            || self.auth.oauth2_refresh_token_ttl_secs == 0
        {
            return Err((
                "auth.oauth2_access_token_ttl_secs",
                "OAuth2 token lifetimes must be above 0".into(),
            ));
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return Err((
                "auth.access_token_ttl_secs",
                "token lifetimes must be above 0".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err((
                "log.level",
                format!(
                    "{e}; use a level (error, warn, info, debug, trace) or a filter such as thingsafe_http=debug,info"
                ),
            ));
        }
        let url = &self.http.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err((
                "http.public_url",
                "must start with http:// or https://".into(),
            ));
        }
        let mqtt = &self.mqtt;
        if !(1024..=268_435_455).contains(&mqtt.max_packet_size) {
            return Err((
                "mqtt.max_packet_size",
                "must be between 1024 and 268435455 bytes".into(),
            ));
        }
        if mqtt.receive_maximum == 0 {
            return Err(("mqtt.receive_maximum", "must be 1 or more".into()));
        }
        if mqtt.connect_timeout_secs == 0 {
            return Err(("mqtt.connect_timeout_secs", "must be 1 or more".into()));
        }
        if mqtt.max_connections == 0 {
            return Err(("mqtt.max_connections", "must be 1 or more".into()));
        }
        if let Err(why) = self.backup.time_of_day() {
            return Err(("backup.time", why));
        }
        if self.backup.keep == 0 {
            return Err((
                "backup.keep",
                "must be 1 or more: a new backup never replaces the only good one".into(),
            ));
        }
        if self.backup.keys_keep_days == 0 {
            return Err((
                "backup.keys_keep_days",
                "must be 1 or more (days a key-store backup is kept)".into(),
            ));
        }
        let tls = &self.tls;
        if tls.required && !tls.enabled {
            return Err((
                "tls.required",
                "needs tls.enabled = true: TLS cannot be required with the TLS listeners off"
                    .into(),
            ));
        }
        if tls.cert.as_os_str().is_empty() != tls.key.as_os_str().is_empty() {
            return Err((
                "tls.cert",
                "tls.cert and tls.key go together: set both (PEM files) or neither (a self-signed certificate is generated)".into(),
            ));
        }
        for name in &tls.hostnames {
            thingsafe_tls::check_hostname(name).map_err(|why| ("tls.hostnames", why))?;
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(("data_dir", "must not be empty".into()));
        }
        self.limits.rate_limits()?;
        Ok(())
    }

    /// The configured public URL, or the one of the listener bound at `addr`.
    pub fn public_url_for(&self, addr: SocketAddr) -> String {
        if self.http.public_url.is_empty() {
            format!("http://{addr}")
        } else {
            self.http.public_url.clone()
        }
    }
}

/// `http.addr` → `THINGSAFE_HTTP_ADDR`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "_").to_uppercase())
}

fn leaf_keys(table: &toml::Table) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(inner) => {
                for (sub, value) in leaf_keys(inner) {
                    out.push((format!("{k}.{sub}"), value));
                }
            }
            other => out.push((k.clone(), other.clone())),
        }
    }
    out
}

/// An environment value, read as the type of the key's default; a list is comma-separated.
fn parse_env(raw: &str, default: &toml::Value) -> Result<toml::Value, String> {
    match default {
        toml::Value::Array(_) => Ok(toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        )),
        toml::Value::Boolean(_) => match raw.trim().to_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err("expected true or false".into()),
        },
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "expected a whole number".into()),
        toml::Value::Float(_) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| "expected a number".into()),
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("a key has a name");
    let mut current = table;
    for part in parts {
        current = current
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("intermediate keys are tables");
    }
    current.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_local_and_safe() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mqtt.addr.to_string(), "127.0.0.1:1883");
        assert_eq!(c.mqtt.tls_addr.to_string(), "127.0.0.1:8883");
        assert_eq!(c.http.tls_addr.to_string(), "127.0.0.1:8443");
        assert!(c.tls.enabled && !c.tls.required);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.signup.enabled);
    }

    #[test]
    fn every_key_has_an_environment_variable() {
        let c = Config::load(
            None,
            env(&[
                ("THINGSAFE_HTTP_ADDR", "127.0.0.1:9999"),
                ("THINGSAFE_SIGNUP_ENABLED", "false"),
                ("THINGSAFE_AUTH_MAX_FAILED_LOGINS", "3"),
                ("THINGSAFE_DATA_DIR", "/tmp/x"),
                ("THINGSAFE_LOG_FORMAT", "json"),
                ("THINGSAFE_HTTP_PUBLIC_URL", "https://iot.example.com"),
                (
                    "THINGSAFE_PRIVACY_POLICY_FILE",
                    "/etc/thingsafe/privacy.toml",
                ),
                ("THINGSAFE_TLS_HOSTNAMES", "iot.example.com, 10.0.0.7"),
                ("THINGSAFE_TLS_REQUIRED", "true"),
                ("THINGSAFE_MQTT_TLS_ADDR", "127.0.0.1:8884"),
                ("UNRELATED", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.addr.port(), 9999);
        assert!(!c.signup.enabled);
        assert_eq!(c.auth.max_failed_logins, 3);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.public_url_for(c.http.addr), "https://iot.example.com");
        assert_eq!(
            c.privacy.policy_file,
            PathBuf::from("/etc/thingsafe/privacy.toml")
        );
        assert_eq!(c.tls.hostnames, ["iot.example.com", "10.0.0.7"]);
        assert!(c.tls.required);
        assert_eq!(c.mqtt.tls_addr.port(), 8884);
        // Every leaf key maps to one variable name.
        let table = toml::Table::try_from(Config::default()).unwrap();
        for (key, _) in leaf_keys(&table) {
            assert!(env_name(&key).starts_with("THINGSAFE_"), "{key}");
        }
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let f = write("[http]\naddr = \"127.0.0.1:7000\"\n");
        let c = Config::load(Some(f.path()), env(&[])).unwrap();
        assert_eq!(c.http.addr.port(), 7000);
        let c = Config::load(
            Some(f.path()),
            env(&[("THINGSAFE_HTTP_ADDR", "127.0.0.1:7001")]),
        )
        .unwrap();
        assert_eq!(c.http.addr.port(), 7001);
    }

    #[test]
    fn bad_values_name_the_key_the_source_and_what_is_allowed() {
        let e = Config::load(None, env(&[("THINGSAFE_HTTP_ADDR", "localhost")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.addr") && e.contains("THINGSAFE_HTTP_ADDR"),
            "{e}"
        );
        let e = Config::load(None, env(&[("THINGSAFE_SIGNUP_ENABLED", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("signup.enabled") && e.contains("true or false"),
            "{e}"
        );
        let e = Config::load(None, env(&[("THINGSAFE_AUTH_LOCKOUT_SECS", "-5")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.lockout_secs"), "{e}");
        for (var, value, needle) in [
            ("THINGSAFE_BACKUP_TIME", "3am", "HH:MM"),
            ("THINGSAFE_BACKUP_TIME", "24:00", "HH:MM"),
            ("THINGSAFE_BACKUP_SCHEDULE", "hourly", "daily"),
            ("THINGSAFE_BACKUP_KEEP", "0", "1 or more"),
            ("THINGSAFE_BACKUP_KEYS_KEEP_DAYS", "0", "1 or more"),
            (
                "THINGSAFE_LIMITS_DEVICE_MESSAGES",
                "200 per second",
                "capacity:seconds",
            ),
            (
                "THINGSAFE_LIMITS_TENANT_MESSAGES",
                "100:0",
                "capacity:seconds",
            ),
        ] {
            let e = Config::load(None, env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(var) && e.contains(needle), "{var}={value}: {e}");
        }
        let c = Config::load(
            None,
            env(&[
                ("THINGSAFE_BACKUP_SCHEDULE", "weekly"),
                ("THINGSAFE_BACKUP_TIME", "23:59"),
            ]),
        )
        .unwrap();
        assert_eq!(c.backup.schedule, BackupSchedule::Weekly);
        assert_eq!(c.backup.time_of_day(), Ok((23, 59)));
        let e = Config::load(None, env(&[("THINGSAFE_LOG_FORMAT", "xml")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("log.format") && e.contains("text") && e.contains("json"),
            "{e}"
        );
        let e = Config::load(None, env(&[("THINGSAFE_AUTH_MAX_FAILED_LOGINS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("auth.max_failed_logins") && e.contains("1 or more"),
            "{e}"
        );

        let e = Config::load(
            None,
            env(&[("THINGSAFE_TLS_HOSTNAMES", "ok.example.com,bad name")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("tls.hostnames") && e.contains("\"bad name\" is not a host name"),
            "{e}"
        );
        let e = Config::load(None, env(&[("THINGSAFE_TLS_CERT", "/etc/ssl/iot.pem")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls.cert") && e.contains("tls.key"), "{e}");
        let e = Config::load(
            None,
            env(&[
                ("THINGSAFE_TLS_ENABLED", "false"),
                ("THINGSAFE_TLS_REQUIRED", "true"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("tls.required") && e.contains("tls.enabled"),
            "{e}"
        );

        let f = write("[http]\nadress = \"127.0.0.1:1\"\n");
        let e = Config::load(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("adress") && e.contains("addr"), "{e}");
        let f = write("[http\naddr = 1");
        let e = Config::load(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        let f = write("[auth]\nmax_failed_logins = \"five\"\n");
        let e = Config::load(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("auth.max_failed_logins") && e.contains(&f.path().display().to_string()),
            "{e}"
        );
        let e = Config::load(Some(Path::new("/nonexistent/thingsafe.toml")), env(&[])).unwrap_err();
        assert!(
            format!("{e:#}").contains("/nonexistent/thingsafe.toml"),
            "{e:#}"
        );
    }

    #[test]
    fn the_example_config_in_the_repository_is_valid_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../thingsafe.toml");
        assert_eq!(
            Config::load(Some(&path), env(&[])).unwrap(),
            Config::default()
        );
    }
}
