//! `thingsafe`: the binary. Parses the command line and the config, then wires the crates
//! together; no behaviour of its own beyond that and first-start setup.

mod admin;
mod backup;
mod config;
mod jobs;
mod scheduled_backups;
mod serve;
mod tenant_exports;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "thingsafe",
    version,
    about = "An IoT platform whose privacy promises are enforced by the code"
)]
struct Cli {
    /// Data directory: database, key store, master key. Overrides `data_dir` and THINGSAFE_DATA_DIR.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Config file (TOML); see thingsafe.toml in the repository for every key.
    #[arg(long, global = true, env = "THINGSAFE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the platform: HTTP API on http.addr, data in the data directory.
    Serve,
    /// Make a consistent, compressed, sealed backup of the database while the server runs
    /// (or of the key store with --keys; or list the backups with --list).
    Backup {
        /// The backup file; default: backup.dir/thingsafe-<time>.tsbackup.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["keys", "list"])]
        out: Option<PathBuf>,
        /// Back up the key store (keys.db) into backup.dir instead, sealed with a key
        /// derived from the master key; kept backup.keys_keep_days days.
        #[arg(long, conflicts_with = "list")]
        keys: bool,
        /// List the backups in backup.dir: date, size, kind, whether they open here.
        #[arg(long)]
        list: bool,
    },
    /// Restore a backup into the data directory (the server must be stopped). The data
    /// directory must hold the installation's key store and master key.
    Restore {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// FILE is a key-store backup: restore keys.db from it (needs the master key in
        /// force when it was made).
        #[arg(long)]
        keys: bool,
    },
    /// Administration tasks on the data directory.
    Admin {
        #[command(subcommand)]
        task: admin::Task,
    },
    /// Print the effective configuration (defaults, file and environment merged).
    Config,
}

/// A timestamp for file names, UTC: `20261123-104500`.
pub fn now_stamp() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .expect("a valid format")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    match cli.command {
        Command::Serve => serve::run(config),
        Command::Admin { task } => admin::run(config, task),
        Command::Backup { out, keys, list } => backup::backup(
            &config,
            match (list, keys) {
                (true, _) => backup::BackupTask::List,
                (false, true) => backup::BackupTask::Keys,
                (false, false) => backup::BackupTask::Data { out },
            },
        ),
        Command::Restore { file, keys: true } => backup::restore_keys(&config, &file),
        Command::Restore { file, keys: false } => backup::restore(&config, &file),
        Command::Config => {
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}
