//! Data-subject requests and their audit trail, restriction of processing, profile
//! rectification and the notices to recipients (GDPR Art. 12-19).

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use thingsafe_core::{Owner, TimestampMs, User, UserId};

use super::SqliteStore;
use super::rows::{aad, conflict, parse_id};
use crate::{
    CodeCheck, NewNotice, NewPrivacyRequest, PrivacyRequest, ProfileChange, RecipientNotice,
    RequestEvent, RequestFilter, RequestKind, RequestStatus, RequestUpdate, Result, Scope,
    StoreError,
};

const REQUESTER: &str = "privacy_request.requester";
const NOTE: &str = "privacy_request.note";

/// What is sealed of a requester.
#[derive(Serialize, Deserialize)]
struct Requester {
    email: String,
    details: Option<String>,
}

fn owner_of(user: Option<UserId>, id: uuid::Uuid) -> Owner {
    user.map_or(Owner::Request(id), Owner::User)
}

fn code_index(store: &SqliteStore, id: uuid::Uuid, code: &str) -> Vec<u8> {
    store
        .vault
        .blind_index("privacy_request.code", format!("{id}:{code}").as_bytes())
        .to_vec()
}

fn seal_note(
    store: &SqliteStore,
    owner: Owner,
    id: uuid::Uuid,
    note: Option<&str>,
) -> Result<Option<Vec<u8>>> {
    note.map(|n| {
        Ok(store
            .vault
            .seal(owner, aad(NOTE, &id.to_string()).as_bytes(), n.as_bytes())?)
    })
    .transpose()
}

/// Opens sealed text; `None` when its key was destroyed (the request outlived it).
fn open_or_gone(
    store: &SqliteStore,
    owner: Owner,
    field: &str,
    id: &str,
    sealed: &[u8],
) -> Result<Option<Vec<u8>>> {
    match store.vault.unseal(owner, aad(field, id).as_bytes(), sealed) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(thingsafe_vault::VaultError::KeyDestroyed(..)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn insert_event(
    c: &Connection,
    id: uuid::Uuid,
    event: &RequestEvent,
    note: Option<Vec<u8>>,
) -> Result<()> {
    c.execute(
        "INSERT INTO privacy_request_event (request_id, at_ms, actor, action, note)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id.to_string(), event.at_ms, event.actor, event.action, note],
    )?;
    Ok(())
}

pub(super) async fn create(store: &SqliteStore, r: NewPrivacyRequest) -> Result<PrivacyRequest> {
    let owner = owner_of(r.user, r.id);
    store.vault.ensure_key(owner)?;
    let requester = serde_json::to_vec(&Requester {
        email: r.email.trim().to_string(),
        details: r.details.clone(),
    })
    .expect("a requester serialises");
    let sealed = store.vault.seal(
        owner,
        aad(REQUESTER, &r.id.to_string()).as_bytes(),
        &requester,
    )?;
    let email_index = r.user.is_none().then(|| {
        store
            .vault
            .blind_index(
                "privacy_request.email",
                r.email.trim().to_lowercase().as_bytes(),
            )
            .to_vec()
    });
    let code = r
        .code
        .as_ref()
        .map(|(code, expires)| (code_index(store, r.id, code), *expires));
    let mut events = Vec::new();
    for e in &r.events {
        events.push((e.clone(), seal_note(store, owner, r.id, e.note.as_deref())?));
    }
    let id = r.id;
    store
        .writer
        .write(move |c| {
            c.execute(
                "INSERT INTO privacy_request (id, kind, status, user_id, tenant_id, owner,
                     requester, email_index, created_ms, due_ms, code_index, code_expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    id.to_string(),
                    r.kind.as_str(),
                    r.status.as_str(),
                    r.user.map(|u| u.to_string()),
                    r.tenant.map(|t| t.to_string()),
                    owner.key_name(),
                    sealed,
                    email_index,
                    r.created_ms,
                    r.due_ms,
                    code.as_ref().map(|(i, _)| i.clone()),
                    code.as_ref().map(|(_, e)| *e),
                ],
            )?;
            for (event, note) in events {
                insert_event(c, id, &event, note)?;
            }
            Ok(())
        })
        .await?;
    one(store, &Scope::System, id).await
}

/// The SQL condition (on `privacy_request`) of what `scope` reaches, and its parameter.
fn scope_sql(scope: &Scope) -> Result<(&'static str, Option<String>)> {
    match scope {
        Scope::System => Ok(("1 = 1", None)),
        Scope::Tenant(t) => Ok(("tenant_id = ?", Some(t.to_string()))),
        Scope::Customer { .. } => Err(StoreError::Forbidden(
            "only administrators handle data-subject requests".into(),
        )),
    }
}

struct Row {
    id: String,
    kind: String,
    status: String,
    user_id: Option<String>,
    tenant_id: Option<String>,
    owner: String,
    requester: Vec<u8>,
    created_ms: i64,
    due_ms: i64,
    extended: bool,
    assignee_id: Option<String>,
    closed_ms: Option<i64>,
    events: Vec<(i64, String, String, Option<Vec<u8>>)>,
}

const COLUMNS: &str = "id, kind, status, user_id, tenant_id, owner, requester, created_ms, due_ms, extended, assignee_id, closed_ms";

fn read_rows(c: &Connection, sql: &str, args: Vec<String>) -> Result<Vec<Row>> {
    let mut stmt = c.prepare(sql)?;
    let mut rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok(Row {
                id: r.get(0)?,
                kind: r.get(1)?,
                status: r.get(2)?,
                user_id: r.get(3)?,
                tenant_id: r.get(4)?,
                owner: r.get(5)?,
                requester: r.get(6)?,
                created_ms: r.get(7)?,
                due_ms: r.get(8)?,
                extended: r.get(9)?,
                assignee_id: r.get(10)?,
                closed_ms: r.get(11)?,
                events: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut events = c.prepare_cached(
        "SELECT at_ms, actor, action, note FROM privacy_request_event
         WHERE request_id = ?1 ORDER BY id",
    )?;
    for row in &mut rows {
        row.events = events
            .query_map([&row.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
    }
    Ok(rows)
}

fn open(store: &SqliteStore, row: Row) -> Result<PrivacyRequest> {
    let owner: Owner = row
        .owner
        .parse()
        .map_err(|e: String| StoreError::Backend(e))?;
    let bad = |what: &str| StoreError::Backend(format!("request {}: bad {what}", row.id));
    let requester: Option<Requester> =
        open_or_gone(store, owner, REQUESTER, &row.id, &row.requester)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(|_| bad("requester")))
            .transpose()?;
    let mut events = Vec::new();
    for (at_ms, actor, action, note) in row.events {
        let note = match note {
            Some(sealed) => open_or_gone(store, owner, NOTE, &row.id, &sealed)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            None => None,
        };
        events.push(RequestEvent {
            at_ms,
            actor,
            action,
            note,
        });
    }
    let (email, details) = match requester {
        Some(r) => (Some(r.email), r.details),
        None => (None, None),
    };
    Ok(PrivacyRequest {
        id: parse_id(&row.id)?,
        kind: RequestKind::parse(&row.kind).ok_or_else(|| bad("kind"))?,
        status: RequestStatus::parse(&row.status).ok_or_else(|| bad("status"))?,
        user: row.user_id.as_deref().map(parse_id).transpose()?,
        tenant: row.tenant_id.as_deref().map(parse_id).transpose()?,
        email,
        details,
        created_ms: row.created_ms,
        due_ms: row.due_ms,
        extended: row.extended,
        assignee: row.assignee_id.as_deref().map(parse_id).transpose()?,
        closed_ms: row.closed_ms,
        events,
    })
}

pub(super) async fn one(
    store: &SqliteStore,
    scope: &Scope,
    id: uuid::Uuid,
) -> Result<PrivacyRequest> {
    let (condition, arg) = scope_sql(scope)?;
    let sql = format!("SELECT {COLUMNS} FROM privacy_request WHERE id = ? AND {condition}");
    let args: Vec<String> = std::iter::once(id.to_string()).chain(arg).collect();
    let row = store
        .readers
        .read(move |c| read_rows(c, &sql, args))
        .await?
        .pop()
        .ok_or(StoreError::NotFound("privacy request"))?;
    open(store, row)
}

pub(super) async fn queue(
    store: &SqliteStore,
    scope: &Scope,
    filter: &RequestFilter,
) -> Result<Vec<PrivacyRequest>> {
    let (condition, arg) = scope_sql(scope)?;
    let mut sql = format!("SELECT {COLUMNS} FROM privacy_request WHERE {condition}");
    let mut args: Vec<String> = arg.into_iter().collect();
    if let Some(status) = filter.status {
        sql.push_str(" AND status = ?");
        args.push(status.as_str().into());
    }
    if let Some(before) = filter.open_due_before_ms {
        sql.push_str(" AND closed_ms IS NULL AND due_ms < CAST(? AS INTEGER)");
        args.push(before.to_string());
    }
    sql.push_str(" ORDER BY due_ms, id");
    let rows = store
        .readers
        .read(move |c| read_rows(c, &sql, args))
        .await?;
    rows.into_iter().map(|r| open(store, r)).collect()
}

pub(super) async fn of_user(store: &SqliteStore, user: UserId) -> Result<Vec<PrivacyRequest>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM privacy_request WHERE user_id = ? ORDER BY created_ms DESC, id"
    );
    let rows = store
        .readers
        .read(move |c| read_rows(c, &sql, vec![user.to_string()]))
        .await?;
    rows.into_iter().map(|r| open(store, r)).collect()
}

pub(super) async fn update(
    store: &SqliteStore,
    scope: &Scope,
    id: uuid::Uuid,
    update: RequestUpdate,
) -> Result<PrivacyRequest> {
    let current = one(store, scope, id).await?;
    let note = seal_note(
        store,
        owner_of(current.user, id),
        id,
        update.event.note.as_deref(),
    )?;
    store
        .writer
        .write(move |c| {
            let changed = c.execute(
                "UPDATE privacy_request SET status = ?3, due_ms = ?4, extended = ?5,
                     assignee_id = ?6, closed_ms = ?7
                 WHERE id = ?1 AND status = ?2",
                params![
                    id.to_string(),
                    update.from.as_str(),
                    update.status.as_str(),
                    update.due_ms,
                    update.extended,
                    update.assignee.map(|u| u.to_string()),
                    update.closed_ms,
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::Conflict(
                    "the request changed meanwhile: load it again".into(),
                ));
            }
            insert_event(c, id, &update.event, note)
        })
        .await?;
    one(store, scope, id).await
}

/// Status, code index, expiry and attempts of a no-account request.
type CodeRow = (String, Option<Vec<u8>>, Option<i64>, u32);

pub(super) async fn check_code(
    store: &SqliteStore,
    id: uuid::Uuid,
    code: &str,
    max_attempts: u32,
    now_ms: TimestampMs,
) -> Result<CodeCheck> {
    let offered = code_index(store, id, code.trim());
    store
        .writer
        .write(move |c| {
            let row: Option<CodeRow> = c
                .query_row(
                    "SELECT status, code_index, code_expires_ms, code_attempts
                     FROM privacy_request WHERE id = ?1 AND user_id IS NULL",
                    [id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((status, Some(index), expires, attempts)) = row else {
                return match row {
                    None => Err(StoreError::NotFound("privacy request")),
                    Some(_) => Ok(CodeCheck::Closed),
                };
            };
            if status != RequestStatus::Received.as_str() || attempts >= max_attempts {
                return Ok(CodeCheck::Closed);
            }
            if expires.is_some_and(|e| now_ms > e) {
                return Ok(CodeCheck::Expired);
            }
            let event = |action: &str| RequestEvent {
                at_ms: now_ms,
                actor: "requester".into(),
                action: action.into(),
                note: None,
            };
            if index == offered {
                c.execute(
                    "UPDATE privacy_request SET status = 'VERIFIED', code_index = NULL
                     WHERE id = ?1",
                    [id.to_string()],
                )?;
                insert_event(c, id, &event("VERIFIED"), None)?;
                return Ok(CodeCheck::Verified);
            }
            c.execute(
                "UPDATE privacy_request SET code_attempts = code_attempts + 1 WHERE id = ?1",
                [id.to_string()],
            )?;
            insert_event(c, id, &event("CODE_REFUSED"), None)?;
            Ok(CodeCheck::Wrong {
                attempts_left: max_attempts - attempts - 1,
            })
        })
        .await
}

pub(super) async fn update_profile(
    store: &SqliteStore,
    user: UserId,
    change: ProfileChange,
) -> Result<User> {
    let current = store.user_by_id(user).await?;
    let owner = Owner::User(user);
    let row = user.to_string();
    let email = change.email.unwrap_or_else(|| current.email.clone());
    let first = change.first_name.unwrap_or(current.first_name);
    let last = change.last_name.unwrap_or(current.last_name);
    let email_index = store.email_index(&email);
    let email = store.seal(owner, "user.email", &row, email.trim())?;
    let first = store.seal_opt(owner, "user.first_name", &row, first.as_deref())?;
    let last = store.seal_opt(owner, "user.last_name", &row, last.as_deref())?;
    store
        .writer
        .write(move |c| {
            c.execute(
                "UPDATE app_user SET email_index = ?2, email = ?3, first_name = ?4, last_name = ?5
                 WHERE id = ?1",
                params![row, email_index, email, first, last],
            )
            .map_err(|e| conflict(e, "another account has this email address"))?;
            Ok(())
        })
        .await?;
    store.user_by_id(user).await
}

pub(super) async fn set_restricted(
    store: &SqliteStore,
    user: UserId,
    restricted: bool,
) -> Result<bool> {
    let now = thingsafe_core::now_ms();
    store
        .writer
        .write(move |c| {
            let changed = if restricted {
                c.execute(
                    "INSERT OR IGNORE INTO restriction (user_id, since_ms) VALUES (?1, ?2)",
                    params![user.to_string(), now],
                )?
            } else {
                c.execute(
                    "DELETE FROM restriction WHERE user_id = ?1",
                    [user.to_string()],
                )?
            };
            Ok(changed > 0)
        })
        .await
}

pub(super) async fn restricted_since(
    store: &SqliteStore,
    user: UserId,
) -> Result<Option<TimestampMs>> {
    store
        .readers
        .read(move |c| {
            Ok(c.query_row(
                "SELECT since_ms FROM restriction WHERE user_id = ?1",
                [user.to_string()],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
}

pub(super) async fn enqueue_notices(store: &SqliteStore, notices: Vec<NewNotice>) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let now = thingsafe_core::now_ms();
    store
        .writer
        .write(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO recipient_notice
                     (user_id, processor, url, event, payload, created_ms, next_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?;
            for n in &notices {
                stmt.execute(params![
                    n.user.to_string(),
                    n.processor,
                    n.url,
                    n.event,
                    n.payload,
                    now
                ])?;
            }
            Ok(())
        })
        .await
}

const NOTICE_COLUMNS: &str =
    "id, processor, url, event, payload, created_ms, attempts, delivered_ms, last_error";

fn read_notice(r: &rusqlite::Row) -> rusqlite::Result<RecipientNotice> {
    Ok(RecipientNotice {
        id: r.get(0)?,
        processor: r.get(1)?,
        url: r.get(2)?,
        event: r.get(3)?,
        payload: r.get(4)?,
        created_ms: r.get(5)?,
        attempts: r.get(6)?,
        delivered_ms: r.get(7)?,
        last_error: r.get(8)?,
    })
}

/// Notices matching `condition` (on `recipient_notice n`, with its `?` parameters).
async fn select_notices(
    store: &SqliteStore,
    condition: &'static str,
    args: Vec<rusqlite::types::Value>,
) -> Result<Vec<RecipientNotice>> {
    store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {NOTICE_COLUMNS} FROM recipient_notice n {condition}"
            ))?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), read_notice)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
}

pub(super) async fn due_notices(
    store: &SqliteStore,
    now_ms: TimestampMs,
    limit: usize,
) -> Result<Vec<RecipientNotice>> {
    select_notices(
        store,
        "WHERE delivered_ms IS NULL AND next_ms <= ?1
           AND (event IN ('restriction', 'restriction_lifted')
                OR NOT EXISTS (SELECT 1 FROM restriction r WHERE r.user_id = n.user_id))
         ORDER BY next_ms, id LIMIT ?2",
        vec![now_ms.into(), (limit as i64).into()],
    )
    .await
}

pub(super) async fn record_attempt(
    store: &SqliteStore,
    id: i64,
    now_ms: TimestampMs,
    result: std::result::Result<(), (String, TimestampMs)>,
) -> Result<()> {
    store
        .writer
        .write(move |c| {
            match result {
                Ok(()) => c.execute(
                    "UPDATE recipient_notice SET attempts = attempts + 1, delivered_ms = ?2,
                         last_error = NULL WHERE id = ?1",
                    params![id, now_ms],
                )?,
                Err((error, retry_ms)) => c.execute(
                    "UPDATE recipient_notice SET attempts = attempts + 1, last_error = ?2,
                         next_ms = ?3 WHERE id = ?1",
                    params![id, error, retry_ms],
                )?,
            };
            Ok(())
        })
        .await
}

pub(super) async fn notices_of(store: &SqliteStore, user: UserId) -> Result<Vec<RecipientNotice>> {
    select_notices(
        store,
        "WHERE user_id = ?1 ORDER BY id",
        vec![user.to_string().into()],
    )
    .await
}

pub(super) async fn shred_closed(
    store: &SqliteStore,
    closed_before_ms: TimestampMs,
) -> Result<usize> {
    let due: Vec<String> = store
        .readers
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id FROM privacy_request
                 WHERE user_id IS NULL AND closed_ms < ?1 AND shredded_ms IS NULL",
            )?;
            let ids = stmt
                .query_map([closed_before_ms], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
        .await?;
    for id in &due {
        // The key goes first: a crash in between leaves a mark to set, never a readable row.
        store.vault.shred(Owner::Request(parse_id(id)?))?;
        let (id, now) = (id.clone(), thingsafe_core::now_ms());
        store
            .writer
            .write(move |c| {
                c.execute(
                    "UPDATE privacy_request SET shredded_ms = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                Ok(())
            })
            .await?;
    }
    Ok(due.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn new_request(user: Option<&User>, email: &str, created_ms: i64) -> NewPrivacyRequest {
        NewPrivacyRequest {
            id: uuid::Uuid::new_v4(),
            kind: RequestKind::Access,
            user: user.map(|u| u.id),
            tenant: user.and_then(|u| u.tenant_id),
            email: email.into(),
            details: Some("everything you hold about my thermostat".into()),
            status: if user.is_some() {
                RequestStatus::Verified
            } else {
                RequestStatus::Received
            },
            created_ms,
            due_ms: created_ms + 30 * DAY,
            code: user
                .is_none()
                .then(|| ("123456".to_string(), created_ms + DAY)),
            events: vec![],
        }
    }

    #[tokio::test]
    async fn the_queue_is_scoped_and_filtered_by_due_date_in_sql_and_nothing_is_plaintext() {
        let fixture = super::super::tests::fixture();
        let (dir, store) = (fixture.dir.clone(), fixture.store);
        let admin = super::super::tests::admin;
        let (ta, a) = store.sign_up("A", admin("a@example.test")).await.unwrap();
        let (tb, b) = store.sign_up("B", admin("b@example.test")).await.unwrap();
        let now = thingsafe_core::now_ms();
        let ra = store
            .create_privacy_request(new_request(Some(&a), "a@example.test", now))
            .await
            .unwrap();
        let rb = store
            .create_privacy_request(new_request(Some(&b), "b@example.test", now - 40 * DAY))
            .await
            .unwrap();
        let anon = store
            .create_privacy_request(new_request(None, "stranger@example.test", now))
            .await
            .unwrap();
        assert_eq!(anon.email.as_deref(), Some("stranger@example.test"));

        let count = |filter: &RequestFilter| {
            let filter = filter.clone();
            let store = &store;
            async move {
                store
                    .privacy_requests(&Scope::System, &filter)
                    .await
                    .unwrap()
                    .len()
            }
        };
        let ids = |rs: Vec<PrivacyRequest>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let all = RequestFilter::default();
        assert_eq!(
            ids(store
                .privacy_requests(&Scope::Tenant(ta.id), &all)
                .await
                .unwrap()),
            [ra.id]
        );
        assert_eq!(
            ids(store
                .privacy_requests(&Scope::Tenant(tb.id), &all)
                .await
                .unwrap()),
            [rb.id]
        );
        assert_eq!(count(&all).await, 3);
        assert!(matches!(
            store.privacy_request(&Scope::Tenant(ta.id), rb.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.privacy_request(&Scope::Tenant(ta.id), anon.id).await,
            Err(StoreError::NotFound(_))
        ));
        // B's request was made 40 days ago with a 30-day deadline: overdue now.
        let overdue = RequestFilter {
            status: None,
            open_due_before_ms: Some(now),
        };
        assert_eq!(
            ids(store
                .privacy_requests(&Scope::System, &overdue)
                .await
                .unwrap()),
            [rb.id]
        );
        // In 31 days all three are overdue, unless closed.
        let later = RequestFilter {
            status: None,
            open_due_before_ms: Some(now + 31 * DAY),
        };
        assert_eq!(count(&later).await, 3);
        let closing = RequestUpdate {
            from: RequestStatus::Verified,
            status: RequestStatus::Completed,
            due_ms: ra.due_ms,
            extended: false,
            assignee: None,
            closed_ms: Some(now),
            event: RequestEvent {
                at_ms: now,
                actor: a.id.to_string(),
                action: "COMPLETED".into(),
                note: Some("sent the export".into()),
            },
        };
        store
            .update_privacy_request(&Scope::Tenant(ta.id), ra.id, closing.clone())
            .await
            .unwrap();
        assert_eq!(count(&later).await, 2);
        // A stale update (the status moved on) is refused.
        assert!(matches!(
            store
                .update_privacy_request(&Scope::Tenant(ta.id), ra.id, closing)
                .await,
            Err(StoreError::Conflict(_))
        ));

        // Codes: wrong ones are counted, the right one verifies once.
        let check = |code: &'static str| store.check_request_code(anon.id, code, 2, now);
        assert_eq!(
            check("000000").await.unwrap(),
            CodeCheck::Wrong { attempts_left: 1 }
        );
        assert_eq!(check("123456").await.unwrap(), CodeCheck::Verified);
        assert_eq!(check("123456").await.unwrap(), CodeCheck::Closed);
        assert_eq!(
            store
                .check_request_code(anon.id, "123456", 2, now + 2 * DAY)
                .await
                .unwrap(),
            CodeCheck::Closed
        );

        // A closed no-account request's own key is destroyed once its record is old
        // enough; open ones and signed-in people's are left alone.
        assert_eq!(store.shred_closed_requests(now + DAY).await.unwrap(), 0);
        let reject = RequestUpdate {
            from: RequestStatus::Verified,
            status: RequestStatus::Rejected,
            due_ms: anon.due_ms,
            extended: false,
            assignee: None,
            closed_ms: Some(now),
            event: RequestEvent {
                at_ms: now,
                actor: "system".into(),
                action: "REJECTED".into(),
                note: Some("nothing held".into()),
            },
        };
        store
            .update_privacy_request(&Scope::System, anon.id, reject)
            .await
            .unwrap();
        assert_eq!(
            store.shred_closed_requests(now).await.unwrap(),
            0,
            "not old enough"
        );
        assert_eq!(store.shred_closed_requests(now + DAY).await.unwrap(), 1);
        assert_eq!(store.shred_closed_requests(now + DAY).await.unwrap(), 0);
        let gone = store
            .privacy_request(&Scope::System, anon.id)
            .await
            .unwrap();
        assert_eq!((gone.email, gone.details), (None, None));
        assert_eq!(gone.events.last().unwrap().action, "REJECTED");
        assert_eq!(gone.events.last().unwrap().note, None);
        let kept = store.privacy_request(&Scope::System, ra.id).await.unwrap();
        assert_eq!(kept.email.as_deref(), Some("a@example.test"));

        drop(store);
        for file in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            for needle in [
                "stranger@example.test",
                "thermostat",
                "sent the export",
                "123456",
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in plaintext"
                );
            }
        }
    }
}
