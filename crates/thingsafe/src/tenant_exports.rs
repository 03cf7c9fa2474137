//! Tenants' scheduled exports, made inside `thingsafe serve`: each tenant that opted in
//! (daily or weekly) gets the same zip as `GET /api/privacy/tenant/export`, written into
//! `data/exports/<tenant>/<id>.tsexport` sealed with the tenant's key (a `.partial` file
//! until it is complete), recorded, and pruned to the tenant's `keep`. Files of tenants
//! that are gone (erased) are deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thingsafe_core::policy::PublishedPolicy;
use thingsafe_core::{Owner, TenantId, now_ms};
use thingsafe_privacy::export::Sink;
use thingsafe_privacy::tenant_export::{self, FILE_EXTENSION, FILE_PURPOSE};
use thingsafe_store::{Store, TenantExportSchedule};
use thingsafe_vault::Vault;

/// The directory inside the data directory that holds them.
pub const EXPORTS_DIR: &str = "exports";
/// How often the schedule looks for due exports.
const CHECK_EVERY: Duration = Duration::from_secs(60);
/// Records of failed or interrupted runs kept per tenant.
const FAILED_KEPT: usize = 10;

/// Runs the schedule forever. `interval_seconds` above 0 (tests) replaces the tenants'
/// daily or weekly periods.
pub async fn run(
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    policy: Arc<PublishedPolicy>,
    dir: PathBuf,
    interval_seconds: u32,
) {
    match store.interrupt_tenant_exports().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            runs = n,
            "tenant exports were interrupted when the server last stopped; their partial files are deleted"
        ),
        Err(e) => tracing::error!(error = %e, "cannot update the record of tenant exports"),
    }
    let check = match interval_seconds {
        0 => CHECK_EVERY,
        s => Duration::from_secs(s.into()),
    };
    loop {
        remove_partials_and_orphans(store.as_ref(), &dir).await;
        let every_ms = (interval_seconds > 0).then(|| i64::from(interval_seconds) * 1000);
        match store.due_tenant_exports(now_ms(), every_ms).await {
            Ok(due) => {
                for (tenant, schedule) in due {
                    export_one(&store, &vault, &policy, &dir, tenant, schedule).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the tenants' export schedules"),
        }
        tokio::time::sleep(check).await;
    }
}

/// Hands the zip's bytes to a blocking thread that seals them into the file.
struct FileSink(tokio::sync::mpsc::Sender<Vec<u8>>);

impl Sink for FileSink {
    async fn send(&mut self, bytes: Vec<u8>) -> bool {
        self.0.send(bytes).await.is_ok()
    }
}

async fn export_one(
    store: &Arc<dyn Store>,
    vault: &Arc<Vault>,
    policy: &PublishedPolicy,
    dir: &Path,
    tenant: TenantId,
    schedule: TenantExportSchedule,
) {
    let id = thingsafe_vault::random_alphanumeric(24);
    if let Err(e) = store.start_tenant_export(tenant, &id).await {
        tracing::error!(tenant = %tenant, error = %e, "cannot record a tenant export");
        return;
    }
    let started = std::time::Instant::now();
    let path = tenant_export::file_path(dir, tenant, &id);
    let outcome = write_sealed(store, vault, policy, tenant, &path).await;
    let record = outcome.as_ref().map(|b| *b).map_err(|e| format!("{e:#}"));
    match &outcome {
        Ok(bytes) => tracing::info!(
            tenant = %tenant, file = %path.display(), bytes,
            seconds = started.elapsed().as_secs_f64(),
            "tenant export made"
        ),
        Err(e) => {
            tracing::error!(tenant = %tenant, error = format!("{e:#}"), "tenant export failed")
        }
    }
    if let Err(e) = store.finish_tenant_export(&id, record).await {
        tracing::error!(tenant = %tenant, error = %e, "cannot record a tenant export");
    }
    if outcome.is_ok() {
        prune(store.as_ref(), dir, tenant, schedule.keep).await;
    }
}

async fn write_sealed(
    store: &Arc<dyn Store>,
    vault: &Arc<Vault>,
    policy: &PublishedPolicy,
    tenant: TenantId,
    path: &Path,
) -> anyhow::Result<u64> {
    use anyhow::Context;
    let folder = path
        .parent()
        .expect("an export file has a folder")
        .to_path_buf();
    let partial = path.with_extension(format!("{FILE_EXTENSION}.partial"));
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    thingsafe_vault::create_private_file(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&partial)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let vault = vault.clone();
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Write;
        let out = std::io::BufWriter::new(file);
        let mut sealed = vault.create_owned_file(Owner::Tenant(tenant), FILE_PURPOSE, out)?;
        while let Some(bytes) = rx.blocking_recv() {
            sealed.write_all(&bytes)?;
        }
        sealed.finish()?;
        Ok(())
    });
    let produced = tenant_export::export_tenant(store.as_ref(), policy, tenant, FileSink(tx)).await;
    let written = writer.await.context("the export writer panicked")?;
    let result = match (produced, written) {
        (Ok(()), Ok(())) => {
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(&partial, path)?;
            Ok(std::fs::metadata(path)?.len())
        }
        (Err(e), _) => Err(anyhow::anyhow!("producing the export: {e:?}")),
        (_, Err(e)) => Err(e.context("writing the sealed export")),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Keeps the newest `keep` good exports of `tenant`; older ones go, file and record.
async fn prune(store: &dyn Store, dir: &Path, tenant: TenantId, keep: u32) {
    let Ok(exports) = store.tenant_exports(Some(tenant)).await else {
        return;
    };
    for old in exports
        .iter()
        .filter(|e| e.status == "ok")
        .skip(keep as usize)
    {
        let path = tenant_export::file_path(dir, tenant, &old.id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot delete an old tenant export");
                continue;
            }
        }
        if let Err(e) = store.delete_tenant_export(&old.id).await {
            tracing::error!(error = %e, "cannot delete the record of an old tenant export");
        }
    }
    // Runs that failed or were cut short are kept for a while, to be seen, not for ever.
    for old in exports
        .iter()
        .filter(|e| e.status == "failed" || e.status == "interrupted")
        .skip(FAILED_KEPT)
    {
        let _ = store.delete_tenant_export(&old.id).await;
    }
}

/// Deletes partial files (a run cut short) and the folders of tenants that no longer
/// exist (erased: their files were unreadable already, their keys being destroyed).
async fn remove_partials_and_orphans(store: &dyn Store, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let known: std::collections::HashSet<String> = match store.tenant_exports(None).await {
        Ok(all) => all.iter().map(|e| e.tenant.to_string()).collect(),
        Err(_) => return,
    };
    for entry in entries.flatten() {
        let folder = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if !known.contains(&name) {
            if let Err(e) = std::fs::remove_dir_all(&folder) {
                tracing::error!(folder = %folder.display(), error = %e, "cannot delete the exports of a tenant that is gone");
            }
            continue;
        }
        for file in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            if file.file_name().to_string_lossy().ends_with(".partial") {
                let _ = std::fs::remove_file(file.path());
            }
        }
    }
}
