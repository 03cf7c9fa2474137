//! The tenant-wide export: everything a tenant holds, for its administrator — its people
//! (account details, never birth dates or password hashes: those serve the sign-up's age
//! check and sign-in only), customers, devices with their attributes and telemetry, and
//! the processing that applies. Streamed like the personal export; scheduled exports write
//! the same bytes into a file sealed with the tenant's key.

use serde_json::json;
use thingsafe_core::policy::PublishedPolicy;
use thingsafe_core::{PageRequest, TenantId, now_ms};
use thingsafe_store::{Scope, Store};

use crate::export::{Archive, ExportError, Sink, all_devices, csv_row, processing, write_devices};
use crate::rfc3339;

const PAGE_SIZE: usize = 1000;

/// Writes the export of `tenant` into `sink`. The caller has checked that it may have it
/// (the tenant's administrator, or its schedule); the store confines every read to it.
pub async fn export_tenant<S: Sink>(
    store: &dyn Store,
    policy: &PublishedPolicy,
    tenant: TenantId,
    sink: S,
) -> Result<(), ExportError> {
    let scope = Scope::Tenant(tenant);
    let mut archive = Archive::new(sink);
    let generated = now_ms();
    archive
        .file(
            "README.txt",
            format!(
                "Everything this Thingsafe server holds for tenant {tenant}, generated {}.\r\n\r\n\
                 tenant.json          the tenant and its own retention setting\r\n\
                 users.json/.csv      its people: email, names, role, customer (not birth dates or password hashes)\r\n\
                 customers.json       its customers\r\n\
                 devices.json         its devices and their attributes\r\n\
                 telemetry/<device id>.csv  everything those devices reported (time, key, value, policy version in force when received)\r\n\
                 processing.json      why data is processed, on what legal basis, how long it is kept, who receives it\r\n\
                 \r\nThe privacy policy in force now is version {}; it is at /privacy.\r\n",
                rfc3339(generated),
                policy.version.version
            )
            .as_bytes(),
        )
        .await?;
    archive
        .json(
            "tenant.json",
            &json!({
                "tenantId": tenant,
                "generatedTime": generated,
                "policyVersion": policy.version.version,
                "telemetryRetentionDays": store.tenant_retention(&scope).await?,
            }),
        )
        .await?;

    let mut users = Vec::new();
    let mut csv = csv_row(&[
        "id",
        "email",
        "first_name",
        "last_name",
        "authority",
        "customer_id",
        "created",
    ]);
    for page in 0.. {
        let batch = store
            .users(
                &scope,
                None,
                &PageRequest {
                    page_size: PAGE_SIZE,
                    page,
                    text_search: None,
                },
            )
            .await?;
        for u in &batch.data {
            let customer = u.customer_id.map(|c| c.to_string()).unwrap_or_default();
            csv.push_str(&csv_row(&[
                &u.id.to_string(),
                &u.email,
                u.first_name.as_deref().unwrap_or(""),
                u.last_name.as_deref().unwrap_or(""),
                u.authority.as_str(),
                &customer,
                &rfc3339(u.created_ms),
            ]));
            users.push(json!({
                "id": u.id, "email": u.email, "firstName": u.first_name, "lastName": u.last_name,
                "authority": u.authority.as_str(), "customerId": u.customer_id,
                "createdTime": u.created_ms,
            }));
        }
        if !batch.has_next {
            break;
        }
    }
    archive.json("users.json", &json!(users)).await?;
    archive.file("users.csv", csv.as_bytes()).await?;

    let mut customers = Vec::new();
    for page in 0.. {
        let batch = store
            .customers(
                &scope,
                &PageRequest {
                    page_size: PAGE_SIZE,
                    page,
                    text_search: None,
                },
            )
            .await?;
        customers.extend(
            batch
                .data
                .iter()
                .map(|c| json!({"id": c.id, "title": c.title, "createdTime": c.created_ms})),
        );
        if !batch.has_next {
            break;
        }
    }
    archive.json("customers.json", &json!(customers)).await?;

    let devices = all_devices(store, &scope).await?;
    write_devices(&mut archive, store, &devices).await?;
    archive.json("processing.json", &processing(policy)).await?;
    archive.finish().await
}

/// What the key of a stored tenant export's file is bound to (`Vault::create_owned_file`).
pub const FILE_PURPOSE: &str = "tenant-export";
/// Ending of a stored tenant export; `.partial` while it is written.
pub const FILE_EXTENSION: &str = "tsexport";

/// Where a scheduled export of `tenant` is kept: `<exports dir>/<tenant>/<id>.tsexport`.
pub fn file_path(exports_dir: &std::path::Path, tenant: TenantId, id: &str) -> std::path::PathBuf {
    exports_dir
        .join(tenant.to_string())
        .join(format!("{id}.{FILE_EXTENSION}"))
}
