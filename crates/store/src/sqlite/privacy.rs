//! The privacy policy's versions (append-only: triggers refuse updates and deletions) and
//! sign-up recording the version accepted.

use rusqlite::{OptionalExtension, params};
use thingsafe_core::policy::{Canonical, PolicyVersion};
use thingsafe_core::{Tenant, User, UserId, now_ms};

use super::SqliteStore;
use crate::{ConsentRecord, NewUser, Result, StoreError};

const COLUMNS: &str = "version, sha256, published_ms, material";

fn read(r: &rusqlite::Row) -> rusqlite::Result<PolicyVersion> {
    Ok(PolicyVersion {
        version: r.get(0)?,
        sha256: r.get(1)?,
        published_ms: r.get(2)?,
        material: r.get(3)?,
    })
}

/// Publishes `policy` unless the latest version has its content; one writer job, so two
/// starts cannot publish the same content twice.
pub(super) async fn publish(
    store: &SqliteStore,
    policy: &Canonical,
) -> Result<(PolicyVersion, bool)> {
    let Canonical {
        json,
        sha256,
        material_sha256,
    } = policy.clone();
    store
        .writer
        .write(move |c| {
            let latest = c
                .query_row(
                    &format!(
                        "SELECT {COLUMNS}, material_sha256 FROM policy_version
                         ORDER BY version DESC LIMIT 1"
                    ),
                    [],
                    |r| Ok((read(r)?, r.get::<_, String>(4)?)),
                )
                .optional()?;
            if let Some((latest, _)) = &latest
                && latest.sha256 == sha256
            {
                return Ok((latest.clone(), false));
            }
            let version = PolicyVersion {
                version: latest.as_ref().map_or(1, |(v, _)| v.version + 1),
                sha256,
                published_ms: now_ms(),
                material: latest
                    .as_ref()
                    .is_none_or(|(_, material)| *material != material_sha256),
            };
            c.execute(
                "INSERT INTO policy_version
                     (version, sha256, material_sha256, material, published_ms, content)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    version.version,
                    version.sha256,
                    material_sha256,
                    version.material,
                    version.published_ms,
                    json
                ],
            )?;
            Ok((version, true))
        })
        .await
}

pub(super) async fn versions(store: &SqliteStore) -> Result<Vec<PolicyVersion>> {
    store
        .readers
        .read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM policy_version ORDER BY version"
            ))?;
            let rows = stmt.query_map([], read)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}

pub(super) async fn content(store: &SqliteStore, version: u32) -> Result<Option<String>> {
    store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT content FROM policy_version WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
}

/// [`crate::Store::sign_up`], with the accepted version and the first consent choices
/// recorded in the same transaction.
pub(super) async fn sign_up_accepting(
    store: &SqliteStore,
    tenant_title: &str,
    admin: NewUser,
    policy_version: u32,
    consents: Vec<ConsentRecord>,
) -> Result<(Tenant, User)> {
    let vault = store.vault.clone();
    store
        .sign_up_with(tenant_title, admin, move |c, user_id| {
            let published: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM policy_version WHERE version = ?1)",
                [policy_version],
                |r| r.get(0),
            )?;
            if !published {
                return Err(StoreError::Invalid(format!(
                    "privacy policy version {policy_version} was never published"
                )));
            }
            c.execute(
                "UPDATE app_user SET accepted_policy_version = ?2 WHERE id = ?1",
                params![user_id.to_string(), policy_version],
            )?;
            super::consent::insert_for_user(c, &vault, user_id, &consents)
        })
        .await
}

pub(super) async fn accepted_version(store: &SqliteStore, user: UserId) -> Result<Option<u32>> {
    store
        .readers
        .read(move |c| {
            c.query_row(
                "SELECT accepted_policy_version FROM app_user WHERE id = ?1",
                [user.to_string()],
                |r| r.get::<_, Option<u32>>(0),
            )
            .optional()?
            .ok_or(StoreError::NotFound("user"))
        })
        .await
}

/// Records that `user` reviewed and accepted `version` (a published one), with its entry
/// in their consent ledger, in one transaction.
pub(super) async fn accept_version(
    store: &SqliteStore,
    user: UserId,
    version: u32,
    entry: crate::ConsentRecord,
) -> Result<()> {
    let vault = store.vault.clone();
    store
        .writer
        .write(move |c| {
            let known: bool = c
                .query_row(
                    "SELECT 1 FROM policy_version WHERE version = ?1",
                    [version],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !known {
                return Err(StoreError::Invalid(format!(
                    "policy version {version} was never published"
                )));
            }
            let changed = c.execute(
                "UPDATE app_user SET accepted_policy_version = ?2 WHERE id = ?1",
                params![user.to_string(), version],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound("user"));
            }
            super::consent::insert_for_user(c, &vault, user, &[entry])
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use thingsafe_core::Authority;
    use thingsafe_core::policy::Policy;
    use thingsafe_vault::{MasterKey, Vault};

    use super::*;
    use crate::Store;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
        let vault = Arc::new(Vault::open(dir.path(), master).unwrap());
        let store = SqliteStore::open(dir.path(), vault).unwrap();
        (dir, store)
    }

    fn canonical(edit: impl Fn(&mut Policy)) -> Canonical {
        let mut policy = Policy::builtin();
        edit(&mut policy);
        policy.canonical()
    }

    fn admin(email: &str) -> NewUser {
        NewUser {
            email: email.into(),
            password_hash: None,
            authority: Authority::TenantAdmin,
            customer_id: None,
            first_name: None,
            last_name: None,
            birth_date: None,
        }
    }

    #[tokio::test]
    async fn a_version_per_content_material_when_what_is_done_changes() {
        let (_dir, store) = store();
        assert!(store.policy_versions().await.unwrap().is_empty());
        let first = canonical(|_| {});
        let (v1, new) = store.publish_policy(&first).await.unwrap();
        assert!(new);
        assert_eq!((v1.version, v1.material), (1, true));
        assert_eq!(v1.sha256, first.sha256);
        // The same content again: the same version.
        let (again, new) = store.publish_policy(&first).await.unwrap();
        assert!(!new);
        assert_eq!(again, v1);
        // Wording only: a new version, not material.
        let (v2, new) = store
            .publish_policy(&canonical(|p| p.controller.name = "Acme Ltd".into()))
            .await
            .unwrap();
        assert!(new);
        assert_eq!((v2.version, v2.material), (2, false));
        // The minimum age: material.
        let (v3, _) = store
            .publish_policy(&canonical(|p| {
                p.controller.name = "Acme Ltd".into();
                p.minimum_age = 18;
            }))
            .await
            .unwrap();
        assert_eq!((v3.version, v3.material), (3, true));
        // Back to the first content: still a new version (what was in force changed).
        let (v4, new) = store.publish_policy(&first).await.unwrap();
        assert!(new);
        assert_eq!(
            (v4.version, v4.material, v4.sha256.as_str()),
            (4, true, first.sha256.as_str())
        );
        assert_eq!(store.policy_versions().await.unwrap(), vec![v1, v2, v3, v4]);
        assert_eq!(store.policy_content(1).await.unwrap(), Some(first.json));
        assert_eq!(store.policy_content(9).await.unwrap(), None);
    }

    #[tokio::test]
    async fn published_versions_cannot_be_changed_or_removed() {
        let (_dir, store) = store();
        store.publish_policy(&canonical(|_| {})).await.unwrap();
        for sql in [
            "UPDATE policy_version SET content = '{}'",
            "DELETE FROM policy_version",
        ] {
            let e = store
                .writer
                .write(move |c| Ok(c.execute(sql, [])?))
                .await
                .unwrap_err();
            assert!(e.to_string().contains("append-only"), "{e}");
        }
        assert_eq!(store.policy_versions().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sign_up_records_the_version_accepted() {
        let (_dir, store) = store();
        let (v1, _) = store.publish_policy(&canonical(|_| {})).await.unwrap();
        let (_, user) = store
            .sign_up_accepting_policy("Acme", admin("a@acme.test"), v1.version)
            .await
            .unwrap();
        assert_eq!(user.email, "a@acme.test");
        assert_eq!(
            store.accepted_policy_version(user.id).await.unwrap(),
            Some(1)
        );
        let e = store
            .sign_up_accepting_policy("Bravo", admin("b@bravo.test"), 7)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "privacy policy version 7 was never published"
        );
        assert!(store.login_record("b@bravo.test").await.unwrap().is_none());
        // Accounts made otherwise accepted nothing through sign-up.
        let (_, other) = store.sign_up("Other", admin("o@other.test")).await.unwrap();
        assert_eq!(store.accepted_policy_version(other.id).await.unwrap(), None);
        assert!(matches!(
            store.accepted_policy_version(UserId::random()).await,
            Err(StoreError::NotFound("user"))
        ));
    }
}
