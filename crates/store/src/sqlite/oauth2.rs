//! OAuth2 clients, codes and tokens (tables `oauth_client`, `oauth_code`, `oauth_token`).
//! Clients are read and changed within the caller's tenant; codes and tokens are found by
//! their keyed hash, as device tokens are.

use rusqlite::{Connection, OptionalExtension, params};
use thingsafe_core::oauth2::{GrantType, Scopes};
use thingsafe_core::{Owner, TimestampMs, User, UserId, now_ms};

use super::rows::{self, UserRow, parse_id};
use super::{SqliteStore, skip_shredded, whole_tenant};
use crate::oauth2::{
    CodeRedemption, NewOAuthClient, NewOAuthCode, OAuthClient, OAuthGrant, OAuthToken,
    RefreshRotation, TokenIssue, TokenKind,
};
use crate::{Result, Scope, StoreError};

const CLIENT_COLUMNS: &str = "id, tenant_id, owner_id, name, secret_index IS NOT NULL, redirect_uris, grant_types, scopes, created_ms";

struct ClientRow {
    id: String,
    tenant_id: String,
    owner_id: String,
    name: Vec<u8>,
    confidential: bool,
    redirect_uris: String,
    grant_types: String,
    scopes: String,
    created_ms: i64,
}

impl ClientRow {
    fn read(r: &rusqlite::Row) -> rusqlite::Result<ClientRow> {
        Self::read_from(r, 0)
    }

    /// The client's columns starting at column `at` (after those of a joined table).
    fn read_from(r: &rusqlite::Row, at: usize) -> rusqlite::Result<ClientRow> {
        Ok(ClientRow {
            id: r.get(at)?,
            tenant_id: r.get(at + 1)?,
            owner_id: r.get(at + 2)?,
            name: r.get(at + 3)?,
            confidential: r.get(at + 4)?,
            redirect_uris: r.get(at + 5)?,
            grant_types: r.get(at + 6)?,
            scopes: r.get(at + 7)?,
            created_ms: r.get(at + 8)?,
        })
    }

    fn open(self, store: &SqliteStore) -> Result<OAuthClient> {
        let tenant = parse_id(&self.tenant_id)?;
        let name = rows::open_text(
            &store.vault,
            Owner::Tenant(tenant),
            "oauth_client.name",
            &self.id,
            &self.name,
        )?;
        let redirect_uris = serde_json::from_str(&self.redirect_uris).map_err(|_| {
            StoreError::Backend(format!("redirect URIs of client {} are malformed", self.id))
        })?;
        let grant_types = self
            .grant_types
            .split(' ')
            .filter_map(GrantType::parse)
            .collect();
        Ok(OAuthClient {
            id: self.id,
            tenant,
            owner: parse_id(&self.owner_id)?,
            name,
            confidential: self.confidential,
            redirect_uris,
            grant_types,
            scopes: stored_scopes(&self.scopes)?,
            created_ms: self.created_ms,
        })
    }
}

fn stored_scopes(raw: &str) -> Result<Scopes> {
    Scopes::parse(raw).map_err(|e| StoreError::Backend(format!("stored scopes: {e}")))
}

fn grant_text(grants: &[GrantType]) -> String {
    grants
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl SqliteStore {
    fn oauth_index(&self, domain: &str, secret: &str) -> Vec<u8> {
        self.vault.blind_index(domain, secret.as_bytes()).to_vec()
    }
}

const SECRET_DOMAIN: &str = "oauth.client_secret";
const CODE_DOMAIN: &str = "oauth.code";
const TOKEN_DOMAIN: &str = "oauth.token";

pub(super) async fn create_client(
    store: &SqliteStore,
    scope: &Scope,
    client: NewOAuthClient,
) -> Result<OAuthClient> {
    let tenant = whole_tenant(scope)?;
    let id = thingsafe_vault::random_token(16);
    let owner = Owner::Tenant(tenant);
    store.vault.ensure_key(owner)?;
    let name = store.seal(owner, "oauth_client.name", &id, &client.name)?;
    let secret = client
        .secret
        .as_deref()
        .map(|s| store.oauth_index(SECRET_DOMAIN, s));
    let uris = serde_json::to_string(&client.redirect_uris)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let created = now_ms();
    let row = OAuthClient {
        id: id.clone(),
        tenant,
        owner: client.owner,
        name: client.name,
        confidential: secret.is_some(),
        redirect_uris: client.redirect_uris,
        grant_types: client.grant_types.clone(),
        scopes: client.scopes.clone(),
        created_ms: created,
    };
    let (grants, scopes) = (grant_text(&client.grant_types), client.scopes.to_string());
    store
        .writer
        .write(move |c| {
            // The owner must be an administrator of this very tenant.
            let owner_ok: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM app_user WHERE id = ?1 AND tenant_id = ?2 AND customer_id IS NULL)",
                params![client.owner.to_string(), tenant.to_string()],
                |r| r.get(0),
            )?;
            if !owner_ok {
                return Err(StoreError::Forbidden(
                    "a client's owner must be an administrator of its tenant".into(),
                ));
            }
            c.execute(
                "INSERT INTO oauth_client (id, tenant_id, owner_id, name, secret_index, redirect_uris, grant_types, scopes, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, tenant.to_string(), client.owner.to_string(), name, secret, uris, grants, scopes, created],
            )?;
            Ok(())
        })
        .await?;
    Ok(row)
}

pub(super) async fn clients(store: &SqliteStore, scope: &Scope) -> Result<Vec<OAuthClient>> {
    let tenant = whole_tenant(scope)?.to_string();
    let rows = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE tenant_id = ?1 ORDER BY created_ms"
            ))?;
            let rows = stmt
                .query_map([tenant], ClientRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await?;
    rows.into_iter()
        .filter_map(|r| skip_shredded(r.open(store)))
        .collect()
}

pub(super) async fn delete_client(store: &SqliteStore, scope: &Scope, id: &str) -> Result<()> {
    let tenant = whole_tenant(scope)?.to_string();
    let id = id.to_string();
    store
        .writer
        .write(move |c| {
            let n = c.execute(
                "DELETE FROM oauth_client WHERE id = ?1 AND tenant_id = ?2",
                params![id, tenant],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound("OAuth2 client"));
            }
            Ok(())
        })
        .await
}

pub(super) async fn client(store: &SqliteStore, id: &str) -> Result<Option<OAuthClient>> {
    let id = id.to_string();
    let row = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                &format!("SELECT {CLIENT_COLUMNS} FROM oauth_client WHERE id = ?1"),
                [id],
                ClientRow::read,
            )
            .optional()?)
        })
        .await?;
    match row {
        None => Ok(None),
        Some(row) => skip_shredded(row.open(store)).transpose(),
    }
}

pub(super) async fn secret_matches(store: &SqliteStore, id: &str, secret: &str) -> Result<bool> {
    let (id, index) = (id.to_string(), store.oauth_index(SECRET_DOMAIN, secret));
    store
        .readers
        .read(move |c| {
            // The comparison is of keyed hashes, so its timing says nothing of the secret.
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM oauth_client WHERE id = ?1 AND secret_index = ?2)",
                params![id, index],
                |r| r.get(0),
            )?)
        })
        .await
}

pub(super) async fn create_code(store: &SqliteStore, code: NewOAuthCode) -> Result<()> {
    let index = store.oauth_index(CODE_DOMAIN, &code.code);
    let family = uuid::Uuid::new_v4().to_string();
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO oauth_code (code_index, client_id, user_id, redirect_uri, scopes, code_challenge, family, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    index,
                    code.client_id,
                    code.user.to_string(),
                    code.redirect_uri,
                    code.scopes.to_string(),
                    code.code_challenge,
                    family,
                    code.expires_ms
                ],
            )?;
            Ok(())
        })
        .await
}

fn revoke_family(c: &Connection, family: &str) -> Result<()> {
    c.execute(
        "UPDATE oauth_token SET revoked_ms = ?2 WHERE family = ?1 AND revoked_ms IS NULL",
        params![family, now_ms()],
    )?;
    Ok(())
}

pub(super) async fn redeem_code(
    store: &SqliteStore,
    code: &str,
    client_id: &str,
) -> Result<CodeRedemption> {
    let index = store.oauth_index(CODE_DOMAIN, code);
    let client_id = client_id.to_string();
    store
        .writer
        .write(move |c| {
            type Found = (String, String, String, String, String, String, i64, Option<i64>);
            let found: Option<Found> = c
                .query_row(
                    "SELECT client_id, user_id, redirect_uri, scopes, code_challenge, family, expires_ms, used_ms
                     FROM oauth_code WHERE code_index = ?1",
                    [&index],
                    |r| {
                        Ok((
                            r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?,
                            r.get(6)?, r.get(7)?,
                        ))
                    },
                )
                .optional()?;
            let Some((owner, user, redirect_uri, scopes, challenge, family, expires, used)) =
                found
            else {
                return Ok(CodeRedemption::Invalid);
            };
            if owner != client_id {
                return Ok(CodeRedemption::Invalid);
            }
            if used.is_some() {
                revoke_family(c, &family)?;
                return Ok(CodeRedemption::Reused);
            }
            let now = now_ms();
            c.execute(
                "UPDATE oauth_code SET used_ms = ?2 WHERE code_index = ?1",
                params![index, now],
            )?;
            if expires <= now {
                return Ok(CodeRedemption::Invalid);
            }
            Ok(CodeRedemption::Redeemed(crate::oauth2::OAuthCode {
                client_id: owner,
                user: parse_id(&user)?,
                redirect_uri,
                scopes: stored_scopes(&scopes)?,
                code_challenge: challenge,
                family,
            }))
        })
        .await
}

fn insert_token(
    c: &Connection,
    index: &[u8],
    kind: TokenKind,
    issue: &TokenIssue,
    scopes: &str,
    expires_ms: TimestampMs,
) -> Result<()> {
    let kind = match kind {
        TokenKind::Access => "access",
        TokenKind::Refresh => "refresh",
    };
    c.execute(
        "INSERT INTO oauth_token (token_index, kind, family, client_id, user_id, grant_type, scopes, issued_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            index,
            kind,
            issue.family,
            issue.client_id,
            issue.user.to_string(),
            issue.grant.as_str(),
            scopes,
            now_ms(),
            expires_ms
        ],
    )?;
    Ok(())
}

fn insert_tokens(
    c: &Connection,
    issue: &TokenIssue,
    access: &[u8],
    refresh: Option<&[u8]>,
) -> Result<()> {
    let scopes = issue.scopes.to_string();
    insert_token(
        c,
        access,
        TokenKind::Access,
        issue,
        &scopes,
        issue.access_expires_ms,
    )?;
    if let (Some(index), Some((_, expires))) = (refresh, &issue.refresh_token) {
        insert_token(c, index, TokenKind::Refresh, issue, &scopes, *expires)?;
    }
    Ok(())
}

pub(super) async fn issue_tokens(store: &SqliteStore, issue: TokenIssue) -> Result<()> {
    let access = store.oauth_index(TOKEN_DOMAIN, &issue.access_token);
    let refresh = issue
        .refresh_token
        .as_ref()
        .map(|(t, _)| store.oauth_index(TOKEN_DOMAIN, t));
    store
        .writer
        .write(move |c| insert_tokens(c, &issue, &access, refresh.as_deref()))
        .await
}

pub(super) async fn token(store: &SqliteStore, token: &str) -> Result<Option<(OAuthToken, User)>> {
    let index = store.oauth_index(TOKEN_DOMAIN, token);
    let found = store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                &format!(
                    "SELECT {}, t.kind, t.client_id, t.grant_type, t.scopes, t.issued_ms, t.expires_ms
                     FROM oauth_token t JOIN app_user u ON u.id = t.user_id
                     WHERE t.token_index = ?1 AND t.revoked_ms IS NULL AND t.used_ms IS NULL
                       AND t.expires_ms > ?2",
                    UserRow::qualified("u")
                ),
                params![index, now_ms()],
                |r| {
                    let at = UserRow::COLUMN_COUNT;
                    Ok((
                        r.get::<_, String>(at)?,
                        r.get::<_, String>(at + 1)?,
                        r.get::<_, String>(at + 2)?,
                        r.get::<_, String>(at + 3)?,
                        r.get::<_, i64>(at + 4)?,
                        r.get::<_, i64>(at + 5)?,
                        UserRow::read(r)?,
                    ))
                },
            )
            .optional()?)
        })
        .await?;
    let Some((kind, client_id, grant, scopes, issued_ms, expires_ms, user)) = found else {
        return Ok(None);
    };
    let Some(user) = skip_shredded(user.open(&store.vault)).transpose()? else {
        return Ok(None);
    };
    let token = OAuthToken {
        kind: if kind == "refresh" {
            TokenKind::Refresh
        } else {
            TokenKind::Access
        },
        client_id,
        user: user.id,
        grant: GrantType::parse(&grant)
            .ok_or_else(|| StoreError::Backend(format!("stored grant type {grant:?}")))?,
        scopes: stored_scopes(&scopes)?,
        issued_ms,
        expires_ms,
    };
    Ok(Some((token, user)))
}

pub(super) async fn rotate_refresh(
    store: &SqliteStore,
    client_id: &str,
    old: &str,
    narrow: Option<Scopes>,
    access: (String, TimestampMs),
    refresh: (String, TimestampMs),
) -> Result<RefreshRotation> {
    let old = store.oauth_index(TOKEN_DOMAIN, old);
    let access_index = store.oauth_index(TOKEN_DOMAIN, &access.0);
    let refresh_index = store.oauth_index(TOKEN_DOMAIN, &refresh.0);
    let client_id = client_id.to_string();
    store
        .writer
        .write(move |c| {
            type Found = (String, String, String, String, i64, Option<i64>, Option<i64>);
            let found: Option<Found> = c
                .query_row(
                    "SELECT family, user_id, grant_type, scopes, expires_ms, used_ms, revoked_ms
                     FROM oauth_token WHERE token_index = ?1 AND kind = 'refresh' AND client_id = ?2",
                    params![old, client_id],
                    |r| {
                        Ok((
                            r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?,
                            r.get(6)?,
                        ))
                    },
                )
                .optional()?;
            let Some((family, user, grant, scopes, expires, used, revoked)) = found else {
                return Ok(RefreshRotation::Invalid);
            };
            if revoked.is_some() {
                return Ok(RefreshRotation::Invalid);
            }
            if used.is_some() {
                revoke_family(c, &family)?;
                return Ok(RefreshRotation::Reused);
            }
            let now = now_ms();
            if expires <= now {
                return Ok(RefreshRotation::Invalid);
            }
            let granted = stored_scopes(&scopes)?;
            let scopes = match narrow {
                Some(asked) if !asked.is_subset(&granted) => {
                    return Ok(RefreshRotation::ScopeTooWide { granted });
                }
                Some(asked) if !asked.is_empty() => asked,
                _ => granted,
            };
            c.execute(
                "UPDATE oauth_token SET used_ms = ?2 WHERE token_index = ?1",
                params![old, now],
            )?;
            let user: UserId = parse_id(&user)?;
            let issue = TokenIssue {
                family,
                client_id,
                user,
                grant: GrantType::parse(&grant)
                    .ok_or_else(|| StoreError::Backend(format!("stored grant type {grant:?}")))?,
                scopes: scopes.clone(),
                access_token: String::new(),
                access_expires_ms: access.1,
                refresh_token: Some((String::new(), refresh.1)),
            };
            insert_tokens(c, &issue, &access_index, Some(&refresh_index))?;
            Ok(RefreshRotation::Rotated { user, scopes })
        })
        .await
}

pub(super) async fn revoke_token(store: &SqliteStore, client_id: &str, token: &str) -> Result<()> {
    let index = store.oauth_index(TOKEN_DOMAIN, token);
    let client_id = client_id.to_string();
    store
        .writer
        .write(move |c| {
            let found: Option<(String, String)> = c
                .query_row(
                    "SELECT kind, family FROM oauth_token WHERE token_index = ?1 AND client_id = ?2",
                    params![index, client_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match found {
                Some((kind, family)) if kind == "refresh" => revoke_family(c, &family),
                Some(_) => {
                    c.execute(
                        "UPDATE oauth_token SET revoked_ms = ?2 WHERE token_index = ?1 AND revoked_ms IS NULL",
                        params![index, now_ms()],
                    )?;
                    Ok(())
                }
                None => Ok(()),
            }
        })
        .await
}

pub(super) async fn grants(store: &SqliteStore, user: UserId) -> Result<Vec<OAuthGrant>> {
    let user = user.to_string();
    let rows = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT t.client_id, MIN(t.issued_ms), GROUP_CONCAT(t.scopes, ' '), {CLIENT}
                 FROM oauth_token t JOIN oauth_client k ON k.id = t.client_id
                 WHERE t.user_id = ?1 AND t.grant_type = 'authorization_code'
                   AND t.revoked_ms IS NULL AND t.used_ms IS NULL AND t.expires_ms > ?2
                 GROUP BY t.client_id ORDER BY MIN(t.issued_ms)"
                    .replace("{CLIENT}", &rows::qualify(CLIENT_COLUMNS, "k"))
                    .as_str(),
            )?;
            let rows = stmt
                .query_map(params![user, now_ms()], |r| {
                    Ok((
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        ClientRow::read_from(r, 3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await?;
    let mut out = Vec::new();
    for (since_ms, scopes, client) in rows {
        let Some(client) = skip_shredded(client.open(store)).transpose()? else {
            continue;
        };
        out.push(OAuthGrant {
            client_id: client.id,
            client_name: client.name,
            scopes: stored_scopes(&scopes)?,
            since_ms,
        });
    }
    Ok(out)
}

pub(super) async fn revoke_grant(
    store: &SqliteStore,
    user: UserId,
    client_id: &str,
) -> Result<bool> {
    let (user, client_id) = (user.to_string(), client_id.to_string());
    store
        .writer
        .write(move |c| {
            let n = c.execute(
                "UPDATE oauth_token SET revoked_ms = ?3
                 WHERE user_id = ?1 AND client_id = ?2 AND grant_type = 'authorization_code'
                   AND revoked_ms IS NULL AND used_ms IS NULL AND expires_ms > ?3",
                params![user, client_id, now_ms()],
            )?;
            Ok(n > 0)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::sqlite::tests::{admin, fixture};

    async fn tenant(store: &SqliteStore, email: &str) -> (Scope, UserId) {
        let (tenant, user) = store.sign_up("Acme", admin(email)).await.unwrap();
        (Scope::Tenant(tenant.id), user.id)
    }

    async fn client(store: &SqliteStore, scope: &Scope, owner: UserId) -> OAuthClient {
        store
            .create_oauth_client(
                scope,
                NewOAuthClient {
                    name: "Grafana bridge".into(),
                    secret: Some("s3cret".into()),
                    redirect_uris: vec!["https://app.example/cb".into()],
                    grant_types: GrantType::ALL.to_vec(),
                    scopes: Scopes::parse("devices:read telemetry:read").unwrap(),
                    owner,
                },
            )
            .await
            .unwrap()
    }

    fn issue(client: &str, user: UserId, access: &str, refresh: &str) -> TokenIssue {
        TokenIssue {
            family: "family-1".into(),
            client_id: client.into(),
            user,
            grant: GrantType::AuthorizationCode,
            scopes: Scopes::parse("devices:read telemetry:read").unwrap(),
            access_token: access.into(),
            access_expires_ms: now_ms() + 60_000,
            refresh_token: Some((refresh.into(), now_ms() + 60_000)),
        }
    }

    #[tokio::test]
    async fn clients_are_confined_to_their_tenant_and_secrets_are_hashed() {
        let f = fixture();
        let store = &f.store;
        let (a, admin_a) = tenant(store, "a@example.com").await;
        let (b, admin_b) = tenant(store, "b@example.com").await;
        let c = client(store, &a, admin_a).await;
        assert_eq!(store.oauth_clients(&a).await.unwrap(), vec![c.clone()]);
        assert!(store.oauth_clients(&b).await.unwrap().is_empty());
        assert!(matches!(
            store.delete_oauth_client(&b, &c.id).await,
            Err(StoreError::NotFound(_))
        ));
        // Another tenant's administrator cannot own a client here.
        let foreign = NewOAuthClient {
            name: "x".into(),
            secret: None,
            redirect_uris: vec![],
            grant_types: vec![],
            scopes: Scopes::default(),
            owner: admin_b,
        };
        assert!(store.create_oauth_client(&a, foreign).await.is_err());
        assert!(
            store
                .oauth_client_secret_matches(&c.id, "s3cret")
                .await
                .unwrap()
        );
        assert!(
            !store
                .oauth_client_secret_matches(&c.id, "s3cre")
                .await
                .unwrap()
        );
        assert_eq!(
            store.oauth_client(&c.id).await.unwrap().unwrap().name,
            "Grafana bridge"
        );
        store.delete_oauth_client(&a, &c.id).await.unwrap();
        assert!(store.oauth_client(&c.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_code_works_once_and_its_reuse_revokes_what_it_gave() {
        let f = fixture();
        let store = &f.store;
        let (a, admin) = tenant(store, "a@example.com").await;
        let c = client(store, &a, admin).await;
        let code = NewOAuthCode {
            code: "the-code".into(),
            client_id: c.id.clone(),
            user: admin,
            redirect_uri: "https://app.example/cb".into(),
            scopes: Scopes::parse("devices:read").unwrap(),
            code_challenge: "challenge".into(),
            expires_ms: now_ms() + 60_000,
        };
        store.create_oauth_code(code.clone()).await.unwrap();
        assert_eq!(
            store
                .redeem_oauth_code("the-code", "other-client")
                .await
                .unwrap(),
            CodeRedemption::Invalid
        );
        let CodeRedemption::Redeemed(redeemed) =
            store.redeem_oauth_code("the-code", &c.id).await.unwrap()
        else {
            panic!("the first use redeems the code");
        };
        let mut tokens = issue(&c.id, admin, "access-1", "refresh-1");
        tokens.family = redeemed.family;
        store.issue_oauth_tokens(tokens).await.unwrap();
        assert!(store.oauth_token("access-1").await.unwrap().is_some());
        assert_eq!(
            store.redeem_oauth_code("the-code", &c.id).await.unwrap(),
            CodeRedemption::Reused
        );
        assert!(store.oauth_token("access-1").await.unwrap().is_none());
        assert!(store.oauth_token("refresh-1").await.unwrap().is_none());

        let expired = NewOAuthCode {
            code: "old".into(),
            expires_ms: now_ms() - 1,
            ..code
        };
        store.create_oauth_code(expired).await.unwrap();
        assert_eq!(
            store.redeem_oauth_code("old", &c.id).await.unwrap(),
            CodeRedemption::Invalid
        );
    }

    /// Presents `refresh-1` of client `id`, asking for `new_access` and `new_refresh`.
    async fn rotate(
        store: &SqliteStore,
        id: &str,
        narrow: Option<Scopes>,
        new_access: &str,
        new_refresh: &str,
    ) -> RefreshRotation {
        let later = now_ms() + 60_000;
        store
            .rotate_oauth_refresh(
                id,
                "refresh-1",
                narrow,
                (new_access.into(), later),
                (new_refresh.into(), later),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
        let f = fixture();
        let store = &f.store;
        let (a, admin) = tenant(store, "a@example.com").await;
        let c = client(store, &a, admin).await;
        store
            .issue_oauth_tokens(issue(&c.id, admin, "access-1", "refresh-1"))
            .await
            .unwrap();
        let wide = rotate(store, &c.id, Some(Scopes::parse("rpc").unwrap()), "x", "y").await;
        assert!(matches!(wide, RefreshRotation::ScopeTooWide { .. }));
        let rotated = rotate(store, &c.id, None, "access-2", "refresh-2").await;
        assert!(matches!(rotated, RefreshRotation::Rotated { user, .. } if user == admin));
        assert!(store.oauth_token("refresh-1").await.unwrap().is_none());
        assert!(store.oauth_token("access-2").await.unwrap().is_some());
        // The old refresh token again: the whole family goes, the new tokens too.
        let reused = rotate(store, &c.id, None, "access-3", "refresh-3").await;
        assert_eq!(reused, RefreshRotation::Reused);
        for gone in ["access-1", "access-2", "refresh-2", "access-3"] {
            assert!(store.oauth_token(gone).await.unwrap().is_none(), "{gone}");
        }
        assert!(store.oauth_grants(admin).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn grants_list_the_applications_and_revoking_one_ends_its_tokens() {
        let f = fixture();
        let store = &f.store;
        let (a, admin) = tenant(store, "a@example.com").await;
        let c = client(store, &a, admin).await;
        store
            .issue_oauth_tokens(issue(&c.id, admin, "access-1", "refresh-1"))
            .await
            .unwrap();
        let grants = store.oauth_grants(admin).await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].client_name, "Grafana bridge");
        assert_eq!(grants[0].scopes.to_string(), "devices:read telemetry:read");
        // Revocation by another client does nothing; by the holder it ends the token.
        store.revoke_oauth_token("other", "access-1").await.unwrap();
        assert!(store.oauth_token("access-1").await.unwrap().is_some());
        assert!(store.revoke_oauth_grant(admin, &c.id).await.unwrap());
        assert!(store.oauth_token("access-1").await.unwrap().is_none());
        assert!(store.oauth_token("refresh-1").await.unwrap().is_none());
        assert!(!store.revoke_oauth_grant(admin, &c.id).await.unwrap());
    }
}
