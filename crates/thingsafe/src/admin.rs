//! `thingsafe admin ...`: tasks an operator runs on the data directory.

use std::io::BufRead;

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
}

pub fn run(config: Config, task: Task) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match task {
        Task::CreateSysadmin { email } => {
            let password = read_password()?;
            runtime.block_on(async {
                let data = serve::open_data_dir(&config.data_dir)?;
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
    }
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
