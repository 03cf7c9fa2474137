//! Two-factor sign-in secrets (columns `totp_*` of `app_user`): the secret sealed with the
//! person's key, whether it is confirmed, and the last time step a code was used for.

use rusqlite::{OptionalExtension, params};
use thingsafe_core::{Owner, UserId};

use super::SqliteStore;
use crate::{Result, StoreError, TotpState};

const FIELD: &str = "user.totp";

pub(super) async fn set(
    store: &SqliteStore,
    user: UserId,
    secret: Option<&[u8]>,
    enabled: bool,
) -> Result<()> {
    let sealed = secret
        .map(|s| {
            store.vault.seal(
                Owner::User(user),
                super::rows::aad(FIELD, &user.to_string()).as_bytes(),
                s,
            )
        })
        .transpose()?;
    let changed = store
        .writer
        .write(move |c| {
            Ok(c.execute(
                "UPDATE app_user SET totp_secret = ?2, totp_enabled = ?3, totp_last_step = NULL
                 WHERE id = ?1",
                params![user.to_string(), sealed, enabled],
            )?)
        })
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

pub(super) async fn state(store: &SqliteStore, user: UserId) -> Result<Option<TotpState>> {
    let row: Option<(Option<Vec<u8>>, bool)> = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT totp_secret, totp_enabled FROM app_user WHERE id = ?1",
                [user.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await?;
    let Some((Some(sealed), enabled)) = row else {
        return Ok(None);
    };
    let secret = store.vault.unseal(
        Owner::User(user),
        super::rows::aad(FIELD, &user.to_string()).as_bytes(),
        &sealed,
    )?;
    Ok(Some(TotpState { secret, enabled }))
}

pub(super) async fn use_step(store: &SqliteStore, user: UserId, step: u64) -> Result<bool> {
    let step = i64::try_from(step).map_err(|_| StoreError::Invalid("time step".into()))?;
    store
        .writer
        .write(move |c| {
            Ok(c.execute(
                "UPDATE app_user SET totp_last_step = ?2
                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![user.to_string(), step],
            )? == 1)
        })
        .await
}
