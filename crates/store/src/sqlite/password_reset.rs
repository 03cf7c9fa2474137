//! Password resets by emailed link (table `password_reset`): a token stored only as a
//! keyed hash, single use, expiring; a reset ends every session of the person and clears
//! their failed sign-ins.

use rusqlite::{OptionalExtension, params};
use thingsafe_core::{Owner, User, UserId, now_ms};

use super::SqliteStore;
use super::rows::parse_id;
use crate::{Result, StoreError};

fn token_index(store: &SqliteStore, token: &str) -> Vec<u8> {
    store
        .vault
        .blind_index("user.password-reset", token.as_bytes())
        .to_vec()
}

/// Starts a reset for the active account of `email`: `None` when there is none (the
/// caller answers the same either way).
pub(super) async fn start(
    store: &SqliteStore,
    email: &str,
    token: &str,
    expires_ms: i64,
) -> Result<Option<User>> {
    use crate::Store;
    let Some(record) = store.login_record(email).await? else {
        return Ok(None);
    };
    if record.password_hash.is_none() {
        return Ok(None);
    }
    let (user, index) = (record.user.id, token_index(store, token));
    store
        .writer
        .write(move |c| {
            // One link at a time: a new one replaces those not used yet.
            c.execute(
                "DELETE FROM password_reset WHERE user_id = ?1 AND used_ms IS NULL",
                [user.to_string()],
            )?;
            c.execute(
                "INSERT INTO password_reset (token_index, user_id, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![index, user.to_string(), now_ms(), expires_ms],
            )?;
            Ok(())
        })
        .await?;
    Ok(Some(record.user))
}

async fn pending(store: &SqliteStore, token: &str) -> Result<Option<UserId>> {
    let index = token_index(store, token);
    let user: Option<String> = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT user_id FROM password_reset
                 WHERE token_index = ?1 AND used_ms IS NULL AND expires_ms > ?2",
                params![index, now_ms()],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await?;
    user.map(|u| parse_id(&u)).transpose()
}

/// The person a reset link is for, while it is valid.
pub(super) async fn user(store: &SqliteStore, token: &str) -> Result<Option<User>> {
    match pending(store, token).await? {
        Some(id) => Ok(Some(store.user_by_id(id).await?)),
        None => Ok(None),
    }
}

/// Sets the new password with a valid link and spends it; every session ends.
pub(super) async fn complete(
    store: &SqliteStore,
    token: &str,
    password_hash: &str,
) -> Result<User> {
    let invalid = || StoreError::NotFound("password reset link");
    let id = pending(store, token).await?.ok_or_else(invalid)?;
    let password = store.seal(
        Owner::User(id),
        "user.password",
        &id.to_string(),
        password_hash,
    )?;
    let index = token_index(store, token);
    let used = store
        .writer
        .write(move |c| {
            let spent = c.execute(
                "UPDATE password_reset SET used_ms = ?2
                 WHERE token_index = ?1 AND used_ms IS NULL AND expires_ms > ?2",
                params![index, now_ms()],
            )?;
            if spent == 0 {
                return Ok(false);
            }
            c.execute(
                "UPDATE app_user SET password = ?2, failed_logins = 0, locked_until_ms = NULL
                 WHERE id = ?1",
                params![id.to_string(), password],
            )?;
            c.execute("DELETE FROM session WHERE user_id = ?1", [id.to_string()])?;
            Ok(true)
        })
        .await?;
    if !used {
        return Err(invalid());
    }
    store.user_by_id(id).await
}
