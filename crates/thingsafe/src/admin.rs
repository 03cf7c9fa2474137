//! `thingsafe admin ...`: tasks an operator runs on the data directory.

use std::io::{BufRead, Write};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::serve;

#[derive(Subcommand, Debug)]
pub enum Task {
    /// Create the system administrator; the password is read from standard input.
    CreateSysadmin {
        #[arg(long)]
        email: String,
    },
    /// Replace the master key: every data key in keys.db is re-wrapped under a new one
    /// (data and data backups are untouched and stay readable). The server must be
    /// stopped. With master.key the file is replaced; with THINGSAFE_MASTER_KEY the new
    /// key is printed. A key-store backup under the new key follows.
    RotateMasterKey,
}

pub fn run(config: Config, task: Task) -> anyhow::Result<()> {
    if let Task::RotateMasterKey = task {
        return rotate_master_key(&config);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match task {
        Task::CreateSysadmin { email } => {
            let password = read_password()?;
            runtime.block_on(async {
                let data = serve::open_data_dir(&config.data_dir, &config.store)?;
                if data.store.sysadmin_exists().await? {
                    bail!(
                        "a system administrator already exists in {}",
                        config.data_dir.display()
                    );
                }
                serve::create_sysadmin(&data, &email, &password).await?;
                println!("created system administrator {email}");
                Ok(())
            })
        }
        Task::RotateMasterKey => unreachable!("handled above"),
    }
}

fn rotate_master_key(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let _lock = crate::backup::lock_data_dir(dir)?;
    let env_key = std::env::var("THINGSAFE_MASTER_KEY").ok();
    let key_file = env_key.is_none();
    if key_file && !dir.join(thingsafe_vault::MASTER_KEY_FILE).exists() {
        bail!(
            "no master key in {} (master.key or THINGSAFE_MASTER_KEY)",
            dir.display()
        );
    }
    let (old, _) = thingsafe_vault::MasterKey::load_or_create(dir, env_key.as_deref())?;
    let (new, rewrapped) = thingsafe_vault::rotate_master_key(dir, &old, key_file, |new| {
        if !key_file {
            // Printed before the commit: once the keys are re-wrapped, this key is needed.
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "new master key (set THINGSAFE_MASTER_KEY to it once this command succeeds; until then the old one stays in force):\n{}",
                new.to_hex().as_str()
            )?;
            out.flush()?;
        }
        Ok(())
    })
    .context("the master key was not rotated")?;
    println!(
        "re-wrapped {rewrapped} keys: master key fingerprint {} -> {}{}",
        old.fingerprint(),
        new.fingerprint(),
        if key_file {
            format!(
                "; {} replaced",
                dir.join(thingsafe_vault::MASTER_KEY_FILE).display()
            )
        } else {
            "; set THINGSAFE_MASTER_KEY to the new key now".to_string()
        }
    );
    let vault = thingsafe_vault::Vault::open(dir, new)?;
    match crate::backup::make_key_backup(&vault, &config.backup.dir) {
        Ok(made) => println!(
            "key-store backup under the new master key: {}",
            made.path.display()
        ),
        Err(e) => eprintln!(
            "warning: no key-store backup under the new master key ({e:#}); run `thingsafe backup --keys`"
        ),
    }
    println!(
        "key-store backups made before now open only with the old master key (fingerprint {}); they expire within {} days. Data backups are unaffected.",
        old.fingerprint(),
        config.backup.keys_keep_days
    );
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("password (at least 10 characters; input is shown): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!(
            "no password on standard input: pipe it in, e.g. `printf '%s\\n' \"$PW\" | thingsafe admin create-sysadmin --email E`"
        );
    }
    Ok(password)
}
