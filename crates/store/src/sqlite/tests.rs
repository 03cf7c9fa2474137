//! Store-level tests: scoping and sealing hold below any API.

use super::*;
use thingsafe_vault::MasterKey;

pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) store: SqliteStore,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (master, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    let vault = Arc::new(Vault::open(dir.path(), master).unwrap());
    let store = SqliteStore::open(dir.path(), vault).unwrap();
    Fixture {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        store,
    }
}

pub(crate) fn admin(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        password_hash: Some(thingsafe_vault::password::hash("correct horse battery")),
        authority: Authority::TenantAdmin,
        customer_id: None,
        first_name: Some("Zebulon".into()),
        last_name: Some("Quixote".into()),
        birth_date: Some(time::macros::date!(1990 - 04 - 01)),
    }
}

fn device(name: &str, token: &str) -> NewDevice {
    NewDevice {
        name: name.into(),
        device_type: "thermostat".into(),
        label: Some("Living room".into()),
        credentials: DeviceCredentials::AccessToken(token.into()),
    }
}

fn all_pages() -> PageRequest {
    PageRequest {
        page_size: 100,
        page: 0,
        text_search: None,
    }
}

#[tokio::test]
async fn another_tenant_sees_nothing_and_cannot_touch_anything() {
    let f = fixture();
    let (ta, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let (tb, _) = f
        .store
        .sign_up("Bravo", admin("b@bravo.test"))
        .await
        .unwrap();
    let a = Scope::Tenant(ta.id);
    let b = Scope::Tenant(tb.id);
    let dev = f
        .store
        .create_device(&a, device("Pump", "tokA"))
        .await
        .unwrap();
    let cust = f.store.create_customer(&a, "Home").await.unwrap();

    assert!(matches!(
        f.store.device(&b, dev.id).await,
        Err(StoreError::NotFound("device"))
    ));
    assert!(matches!(
        f.store.device_credentials(&b, dev.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.delete_device(&b, dev.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store
            .set_device_credentials(&b, dev.id, DeviceCredentials::AccessToken("x".into()))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.assign_device(&b, dev.id, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.customer(&b, cust.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.delete_customer(&b, cust.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        f.store
            .devices(&b, None, &all_pages())
            .await
            .unwrap()
            .total_elements,
        0
    );
    assert_eq!(
        f.store
            .customers(&b, &all_pages())
            .await
            .unwrap()
            .total_elements,
        0
    );
    // B cannot assign its own device to A's customer either.
    let bdev = f
        .store
        .create_device(&b, device("Pump", "tokB"))
        .await
        .unwrap();
    assert!(matches!(
        f.store.assign_device(&b, bdev.id, Some(cust.id)).await,
        Err(StoreError::NotFound("customer"))
    ));
    // Everything of A is intact.
    assert_eq!(f.store.device(&a, dev.id).await.unwrap().name, "Pump");
    assert_eq!(
        f.store.device_credentials(&a, dev.id).await.unwrap(),
        DeviceCredentials::AccessToken("tokA".into())
    );
}

#[tokio::test]
async fn a_customer_user_reaches_only_its_customer() {
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let tenant = Scope::Tenant(t.id);
    let home = f.store.create_customer(&tenant, "Home").await.unwrap();
    let office = f.store.create_customer(&tenant, "Office").await.unwrap();
    let mine = f
        .store
        .create_device(&tenant, device("Mine", "t1"))
        .await
        .unwrap();
    let theirs = f
        .store
        .create_device(&tenant, device("Theirs", "t2"))
        .await
        .unwrap();
    f.store
        .assign_device(&tenant, mine.id, Some(home.id))
        .await
        .unwrap();
    f.store
        .assign_device(&tenant, theirs.id, Some(office.id))
        .await
        .unwrap();

    let me = Scope::Customer {
        tenant: t.id,
        customer: home.id,
    };
    let list = f.store.devices(&me, None, &all_pages()).await.unwrap();
    assert_eq!(
        list.data
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Mine"]
    );
    assert!(matches!(
        f.store.device(&me, theirs.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.devices(&me, Some(office.id), &all_pages()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.customer(&me, office.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.delete_device(&me, mine.id).await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        f.store.create_device(&me, device("New", "t3")).await,
        Err(StoreError::Forbidden(_))
    ));
    assert_eq!(
        f.store
            .customers(&me, &all_pages())
            .await
            .unwrap()
            .total_elements,
        1
    );
}

#[tokio::test]
async fn nothing_personal_is_stored_in_plaintext() {
    let f = fixture();
    let (t, _) = f
        .store
        .sign_up("Acme Plaintextcorp", admin("zeb.quixote@acme.test"))
        .await
        .unwrap();
    f.store
        .create_device(
            &Scope::Tenant(t.id),
            device("Pacemaker-of-Zebulon", "SECRETTOKEN123"),
        )
        .await
        .unwrap();
    for needle in [
        "zeb.quixote",
        "Zebulon",
        "Quixote",
        "SECRETTOKEN123",
        "Pacemaker-of",
        "Plaintextcorp",
        "$argon2id$",
        "1990-04-01",
    ] {
        for entry in std::fs::read_dir(&f.dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in plaintext in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn names_tokens_and_emails_are_unique_with_clear_conflicts() {
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let s = Scope::Tenant(t.id);
    f.store
        .create_device(&s, device("Pump", "tok1"))
        .await
        .unwrap();
    let same_name = f
        .store
        .create_device(&s, device("Pump", "tok2"))
        .await
        .unwrap_err();
    assert!(
        same_name.to_string().contains("name already exists"),
        "{same_name}"
    );
    let same_token = f
        .store
        .create_device(&s, device("Pump 2", "tok1"))
        .await
        .unwrap_err();
    assert!(
        same_token.to_string().contains("access token"),
        "{same_token}"
    );
    let same_email = f
        .store
        .sign_up("Other", admin("A@ACME.test"))
        .await
        .unwrap_err();
    assert!(same_email.to_string().contains("email"), "{same_email}");
    // A failed job in a batch loses nothing else: the first device is still there.
    assert_eq!(
        f.store
            .devices(&s, None, &all_pages())
            .await
            .unwrap()
            .total_elements,
        1
    );
}

#[tokio::test]
async fn deleting_a_user_shreds_their_key() {
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let s = Scope::Tenant(t.id);
    let mut new = admin("c@acme.test");
    new.authority = Authority::TenantAdmin;
    let user = f.store.create_user(&s, new).await.unwrap();
    f.store.delete_user(&s, user.id).await.unwrap();
    assert!(matches!(
        f.store.vault.key_state(Owner::User(user.id)).unwrap(),
        thingsafe_vault::KeyState::Destroyed { .. }
    ));
    assert!(f.store.login_record("c@acme.test").await.unwrap().is_none());
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_all_land() {
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let store = Arc::new(f.store);
    let s = Scope::Tenant(t.id);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_device(&s, device(&format!("d{i}"), &format!("tok{i}")))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        store
            .devices(&s, None, &all_pages())
            .await
            .unwrap()
            .total_elements,
        200
    );
    let page = store
        .devices(
            &s,
            None,
            &PageRequest {
                page_size: 30,
                page: 6,
                text_search: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (page.data.len(), page.total_pages, page.has_next),
        (20, 7, false)
    );
}

mod telemetry {
    use super::*;
    use crate::TelemetryQuery;
    use thingsafe_core::AttributeScope;
    use thingsafe_core::payload::{Point, Value};

    fn point(ts: i64, key: &str, value: Value) -> Point {
        Point {
            ts,
            key: key.into(),
            value,
        }
    }

    async fn tenant_with_device(f: &Fixture) -> (Scope, Device) {
        let (t, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
        let scope = Scope::Tenant(t.id);
        let d = f
            .store
            .create_device(&scope, device("Pump", "tok"))
            .await
            .unwrap();
        (scope, d)
    }

    fn query(keys: &[&str], limit: usize, descending: bool) -> TelemetryQuery {
        TelemetryQuery {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            start_ms: 0,
            end_ms: i64::MAX,
            limit,
            descending,
        }
    }

    #[tokio::test]
    async fn telemetry_reads_back_by_range_key_order_and_latest() {
        let f = fixture();
        let (scope, d) = tenant_with_device(&f).await;
        let mut feed = f.store.changes();
        for i in 0..10 {
            f.store
                .append_telemetry(
                    &d,
                    vec![
                        point(1000 + i, "temperature", Value::Double(20.0 + i as f64)),
                        point(1000 + i, "on", Value::Bool(i % 2 == 0)),
                    ],
                )
                .await
                .unwrap();
        }
        // An older point arriving late does not replace the latest value.
        f.store
            .append_telemetry(&d, vec![point(5, "temperature", Value::Double(-1.0))])
            .await
            .unwrap();

        let latest = f.store.latest_telemetry(&scope, d.id, None).await.unwrap();
        assert_eq!(
            latest,
            vec![
                point(1009, "on", Value::Bool(false)),
                point(1009, "temperature", Value::Double(29.0))
            ]
        );
        assert_eq!(
            f.store.telemetry_keys(&scope, d.id).await.unwrap(),
            vec!["on", "temperature"]
        );

        let newest3 = f
            .store
            .telemetry(&scope, d.id, query(&["temperature"], 3, true))
            .await
            .unwrap();
        assert_eq!(
            newest3.iter().map(|p| p.ts).collect::<Vec<_>>(),
            vec![1009, 1008, 1007]
        );
        let oldest2 = f
            .store
            .telemetry(&scope, d.id, query(&["temperature"], 2, false))
            .await
            .unwrap();
        assert_eq!(
            oldest2.iter().map(|p| p.ts).collect::<Vec<_>>(),
            vec![5, 1000]
        );
        let mut window = query(&[], 100, false);
        window.start_ms = 1003;
        window.end_ms = 1004;
        let points = f.store.telemetry(&scope, d.id, window).await.unwrap();
        assert_eq!(points.len(), 4, "two keys in two ms: {points:?}");

        // Live subscribers see each committed message.
        let first = feed.recv().await.unwrap();
        assert!(
            matches!(&*first, crate::Change::Telemetry { device, points, .. } if *device == d.id && points.len() == 2)
        );

        // Another tenant cannot read it.
        let (other, _) = f
            .store
            .sign_up("Other", admin("o@other.test"))
            .await
            .unwrap();
        assert!(matches!(
            f.store
                .latest_telemetry(&Scope::Tenant(other.id), d.id, None)
                .await,
            Err(StoreError::NotFound(_))
        ));
    }

    async fn rows(f: &Fixture, table: &'static str) -> i64 {
        f.store
            .readers
            .read(move |c| {
                Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_flush_moves_the_log_into_chunks_without_losing_or_repeating_a_point() {
        let f = fixture();
        let (scope, d) = tenant_with_device(&f).await;
        for ts in 0..50 {
            f.store
                .append_telemetry(
                    &d,
                    vec![
                        point(ts, "a", Value::Long(ts)),
                        point(ts, "b", Value::Bool(true)),
                    ],
                )
                .await
                .unwrap();
        }
        let before = f
            .store
            .telemetry(&scope, d.id, query(&[], 1000, false))
            .await
            .unwrap();
        assert_eq!(before.len(), 100);
        assert_eq!(
            (rows(&f, "telemetry_log").await, rows(&f, "telemetry").await),
            (50, 0)
        );
        let latest_before = f.store.latest_telemetry(&scope, d.id, None).await.unwrap();
        assert_eq!(
            latest_before,
            vec![
                point(49, "a", Value::Long(49)),
                point(49, "b", Value::Bool(true))
            ]
        );
        assert_eq!(
            f.store.flusher.unflushed.len(),
            50,
            "each committed row's plaintext is handed to the flush"
        );
        assert_eq!(f.store.flusher.flush_once().await.unwrap(), 50);
        assert_eq!(f.store.flusher.unflushed.len(), 0, "the flush took them");
        assert_eq!(
            f.store.latest_telemetry(&scope, d.id, None).await.unwrap(),
            latest_before
        );
        assert_eq!(
            (rows(&f, "telemetry_log").await, rows(&f, "telemetry").await),
            (0, 1),
            "one chunk per device and owner"
        );
        assert_eq!(
            f.store
                .telemetry(&scope, d.id, query(&[], 1000, false))
                .await
                .unwrap(),
            before
        );

        // Appends racing with flushes: every point exactly once.
        let store = Arc::new(f.store);
        let mut appends = Vec::new();
        for ts in 100..300 {
            let (store, d) = (store.clone(), d.clone());
            appends.push(tokio::spawn(async move {
                store
                    .append_telemetry(&d, vec![point(ts, "a", Value::Long(ts))])
                    .await
                    .unwrap()
            }));
        }
        for _ in 0..5 {
            store.flusher.flush_once().await.unwrap();
            tokio::task::yield_now().await;
        }
        for a in appends {
            a.await.unwrap();
        }
        let a = store
            .telemetry(&scope, d.id, query(&["a"], 10_000, false))
            .await
            .unwrap();
        assert_eq!(a.len(), 250);
        store.flusher.flush_all().await.unwrap();
        let a2 = store
            .telemetry(&scope, d.id, query(&["a"], 10_000, false))
            .await
            .unwrap();
        assert_eq!(a, a2);
        let ts: std::collections::BTreeSet<i64> = a2.iter().map(|p| p.ts).collect();
        assert_eq!(ts.len(), 250, "no point repeated");
    }

    /// The flush uses a handed-over plaintext only for the very sealed bytes it came with:
    /// a row id used again (the log emptied) or any other mismatch opens the row instead.
    #[tokio::test]
    async fn the_flush_opens_a_row_whose_handed_over_plaintext_is_not_its_own() {
        let f = fixture();
        let (scope, d) = tenant_with_device(&f).await;
        f.store
            .append_telemetry(&d, vec![point(7, "a", Value::Long(7))])
            .await
            .unwrap();
        let (id, sealed): (i64, Vec<u8>) = f
            .store
            .readers
            .read(|c| {
                Ok(
                    c.query_row("SELECT id, points FROM telemetry_log", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?,
                )
            })
            .await
            .unwrap();
        // Another sealing's plaintext under the same row id, as after the id was used
        // again: same length, another nonce.
        let mut other = sealed.clone();
        other[5] ^= 0xff;
        let wrong = crate::codec::encode_points(&[point(7, "a", Value::Long(666))]);
        f.store.flusher.unflushed.insert(id, &other, wrong);
        f.store.flusher.flush_all().await.unwrap();
        assert_eq!(
            f.store
                .telemetry(&scope, d.id, query(&[], 10, false))
                .await
                .unwrap(),
            vec![point(7, "a", Value::Long(7))]
        );
        assert_eq!(
            f.store.latest_telemetry(&scope, d.id, None).await.unwrap(),
            vec![point(7, "a", Value::Long(7))]
        );
    }

    #[tokio::test]
    async fn deleting_a_range_rewrites_sealed_rows_and_latest_values() {
        let f = fixture();
        let (scope, d) = tenant_with_device(&f).await;
        for ts in 1..=5 {
            f.store
                .append_telemetry(
                    &d,
                    vec![
                        point(ts, "a", Value::Long(ts)),
                        point(ts, "b", Value::Long(-ts)),
                    ],
                )
                .await
                .unwrap();
        }
        let deleted = f
            .store
            .delete_telemetry(&d, vec!["a".into()], 3, 5, true)
            .await
            .unwrap();
        assert_eq!(deleted, 3);
        let a = f
            .store
            .telemetry(&scope, d.id, query(&["a"], 10, false))
            .await
            .unwrap();
        assert_eq!(a.iter().map(|p| p.ts).collect::<Vec<_>>(), vec![1, 2]);
        let b = f
            .store
            .telemetry(&scope, d.id, query(&["b"], 10, false))
            .await
            .unwrap();
        assert_eq!(b.len(), 5, "other keys in the same rows stay");
        let latest = f
            .store
            .latest_telemetry(&scope, d.id, Some(vec!["a".into()]))
            .await
            .unwrap();
        assert_eq!(
            latest,
            vec![point(2, "a", Value::Long(2))],
            "latest rewritten from what remains"
        );
        // Without rewriting, a deleted latest value is simply gone.
        f.store
            .delete_telemetry(&d, vec!["b".into()], 0, 10, false)
            .await
            .unwrap();
        assert!(
            f.store
                .latest_telemetry(&scope, d.id, Some(vec!["b".into()]))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            f.store.telemetry_keys(&scope, d.id).await.unwrap(),
            vec!["a"]
        );
    }

    #[tokio::test]
    async fn attributes_per_scope_with_updates_and_deletes() {
        let f = fixture();
        let (scope, d) = tenant_with_device(&f).await;
        f.store
            .save_attributes(
                &d,
                AttributeScope::Client,
                vec![
                    ("fw".into(), Value::String("1.0".into())),
                    ("model".into(), Value::String("X".into())),
                ],
            )
            .await
            .unwrap();
        f.store
            .save_attributes(
                &d,
                AttributeScope::Client,
                vec![("fw".into(), Value::String("1.1".into()))],
            )
            .await
            .unwrap();
        f.store
            .save_attributes(
                &d,
                AttributeScope::Shared,
                vec![("target".into(), Value::Long(21))],
            )
            .await
            .unwrap();
        let client = f
            .store
            .attributes(&scope, d.id, AttributeScope::Client, None)
            .await
            .unwrap();
        assert_eq!(
            client
                .iter()
                .map(|a| (a.key.as_str(), a.value.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("fw", Value::String("1.1".into())),
                ("model", Value::String("X".into()))
            ]
        );
        let shared = f
            .store
            .device_attributes(&d, AttributeScope::Shared, Some(vec!["target".into()]))
            .await
            .unwrap();
        assert_eq!(shared.len(), 1);
        assert!(
            f.store
                .device_attributes(&d, AttributeScope::Server, None)
                .await
                .unwrap()
                .is_empty()
        );
        f.store
            .remove_attributes(&d, AttributeScope::Client, vec!["model".into()])
            .await
            .unwrap();
        assert_eq!(
            f.store
                .device_attributes(&d, AttributeScope::Client, None)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn telemetry_is_sealed_and_dies_with_its_owners_key() {
        let f = fixture();
        let (scope, d) = tenant_with_device(&f).await;
        let home = f.store.create_customer(&scope, "Home").await.unwrap();
        f.store
            .append_telemetry(
                &d,
                vec![point(
                    1,
                    "heart_rate_zz",
                    Value::String("tenant-era-secret".into()),
                )],
            )
            .await
            .unwrap();
        let assigned = f
            .store
            .assign_device(&scope, d.id, Some(home.id))
            .await
            .unwrap();
        f.store
            .append_telemetry(
                &assigned,
                vec![point(
                    2,
                    "heart_rate_zz",
                    Value::String("customer-era-secret".into()),
                )],
            )
            .await
            .unwrap();
        f.store
            .save_attributes(
                &assigned,
                AttributeScope::Client,
                vec![("home_address_zz".into(), Value::String("221B Baker".into()))],
            )
            .await
            .unwrap();

        for needle in [
            "heart_rate_zz",
            "tenant-era-secret",
            "customer-era-secret",
            "home_address_zz",
            "221B Baker",
        ] {
            for entry in std::fs::read_dir(&f.dir).unwrap() {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in {}",
                    path.display()
                );
            }
        }
        assert_eq!(
            f.store
                .telemetry(&scope, d.id, query(&[], 10, false))
                .await
                .unwrap()
                .len(),
            2
        );
        // Deleting the customer shreds its key: what was sealed for it is gone, the
        // tenant's part stays.
        f.store.delete_customer(&scope, home.id).await.unwrap();
        let left = f
            .store
            .telemetry(&scope, d.id, query(&[], 10, false))
            .await
            .unwrap();
        assert_eq!(
            left,
            vec![point(
                1,
                "heart_rate_zz",
                Value::String("tenant-era-secret".into())
            )]
        );
        // A flush after the erasure drops the unreadable rows and keeps the rest.
        f.store.flusher.flush_all().await.unwrap();
        assert_eq!(rows(&f, "telemetry_log").await, 0);
        assert_eq!(
            f.store
                .telemetry(&scope, d.id, query(&[], 10, false))
                .await
                .unwrap(),
            left
        );
        assert!(
            f.store
                .attributes(&scope, d.id, AttributeScope::Client, None)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

fn consent(purpose: &str, granted: bool, method: &str) -> crate::ConsentRecord {
    crate::ConsentRecord {
        purpose: purpose.into(),
        granted,
        method: method.into(),
        policy_version: None,
        at_ms: thingsafe_core::now_ms(),
    }
}

#[tokio::test]
async fn the_consent_ledger_is_append_only_and_sealed_for_people() {
    let f = fixture();
    let (_, user) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let who = crate::ConsentSubject::User(user.id);
    f.store
        .record_consents(who, vec![consent("marketing", true, "form")])
        .await
        .unwrap();
    f.store
        .record_consents(who, vec![consent("marketing", false, "unsubscribe_link")])
        .await
        .unwrap();
    let history = f.store.consent_history(who).await.unwrap();
    let seen: Vec<_> = history
        .iter()
        .map(|c| (c.purpose.as_str(), c.granted, c.method.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("marketing", true, "form"),
            ("marketing", false, "unsubscribe_link")
        ]
    );
    // The database itself refuses to rewrite history.
    let rewrite = f
        .store
        .writer
        .write(|c| Ok(c.execute("UPDATE consent SET at_ms = 0", [])?))
        .await;
    assert!(
        matches!(&rewrite, Err(e) if e.to_string().contains("append-only")),
        "{rewrite:?}"
    );
    let forget = f
        .store
        .writer
        .write(|c| Ok(c.execute("DELETE FROM consent", [])?))
        .await;
    assert!(
        matches!(&forget, Err(e) if e.to_string().contains("append-only")),
        "{forget:?}"
    );
    // A person's entries are sealed: the purpose and method are not in the file.
    drop(f.store);
    let bytes = std::fs::read(f.dir.join(DATA_FILE)).unwrap();
    let wal = std::fs::read(f.dir.join(format!("{DATA_FILE}-wal"))).unwrap_or_default();
    for needle in ["unsubscribe_link", "marketing"] {
        for file in [&bytes, &wal] {
            assert!(
                !file.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in plaintext"
            );
        }
    }
}

#[tokio::test]
async fn erasing_the_last_administrator_takes_the_tenant_and_is_purged_later() {
    let f = fixture();
    let (tenant, user) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let (other_tenant, _) = f
        .store
        .sign_up("Bravo", admin("b@bravo.test"))
        .await
        .unwrap();
    let scope = Scope::Tenant(tenant.id);
    let dev = f
        .store
        .create_device(&scope, device("Pump", "tokA"))
        .await
        .unwrap();
    let kept = f
        .store
        .create_device(&Scope::Tenant(other_tenant.id), device("Pump", "tokB"))
        .await
        .unwrap();
    let point = |ts| thingsafe_core::payload::Point {
        ts,
        key: "temperature".into(),
        value: thingsafe_core::payload::Value::Long(21),
    };
    f.store
        .append_telemetry(&dev, (1..=100).map(point).collect())
        .await
        .unwrap();
    f.store
        .append_telemetry(&kept, vec![point(1)])
        .await
        .unwrap();
    f.store.flusher.flush_all().await.unwrap();
    f.store
        .record_consents(
            crate::ConsentSubject::User(user.id),
            vec![consent("marketing", true, "signup")],
        )
        .await
        .unwrap();

    let erasure = f.store.erase_account(user.id).await.unwrap();
    assert_eq!(erasure.tenant, Some(tenant.id));
    assert_eq!(erasure.devices, 1);
    assert!(
        erasure
            .destroyed_keys
            .contains(&format!("tenant:{}", tenant.id))
    );
    // Unreadable at once; the rows are still there until the purge.
    assert!(f.store.login_record("a@acme.test").await.unwrap().is_none());
    assert!(f.store.device_by_token("tokA").await.unwrap().is_none());
    let rows = |sql: &'static str| {
        let readers = f.store.readers.clone();
        async move {
            readers
                .read(move |c| Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))?))
                .await
                .unwrap()
        }
    };
    assert!(rows("SELECT COUNT(*) FROM telemetry").await >= 2);
    assert!(matches!(
        f.store.erase_account(user.id).await,
        Err(StoreError::NotFound("user"))
    ));
    // The address is free again before the purge.
    f.store
        .sign_up("Again", admin("a@acme.test"))
        .await
        .unwrap();

    while f.store.purge_erased(10).await.unwrap() > 0 {}
    assert_eq!(rows("SELECT COUNT(*) FROM device").await, 1);
    assert_eq!(rows("SELECT COUNT(*) FROM telemetry").await, 1);
    assert_eq!(
        rows("SELECT COUNT(*) FROM consent").await,
        0,
        "the erased person's ledger entries are purged"
    );
    assert_eq!(
        rows("SELECT COUNT(*) FROM erasure WHERE purged_ms IS NOT NULL").await,
        1
    );
    assert!(f.store.device_by_token("tokB").await.unwrap().is_some());
}

#[tokio::test]
async fn erasing_one_of_two_administrators_keeps_the_tenant() {
    let f = fixture();
    let (tenant, first) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let scope = Scope::Tenant(tenant.id);
    f.store
        .create_user(&scope, admin("second@acme.test"))
        .await
        .unwrap();
    f.store
        .create_device(&scope, device("Pump", "tokA"))
        .await
        .unwrap();
    let erasure = f.store.erase_account(first.id).await.unwrap();
    assert_eq!(erasure.tenant, None);
    assert_eq!(erasure.destroyed_keys, [format!("user:{}", first.id)]);
    assert!(f.store.device_by_token("tokA").await.unwrap().is_some());
    while f.store.purge_erased(10).await.unwrap() > 0 {}
    let users = f.store.users(&scope, None, &all_pages()).await.unwrap();
    assert_eq!(users.data.len(), 1);
    assert_eq!(users.data[0].email, "second@acme.test");
}

/// The erasure's own work is keys and a few account rows; the amount of telemetry does not
/// enter it. Shown by what it leaves: right after `erase_account` every telemetry row is
/// still in the file (nothing was deleted or rewritten per row) and none can be read.
#[tokio::test]
async fn erasure_work_does_not_depend_on_the_amount_of_data() {
    let f = fixture();
    for (n, email) in [(10usize, "small@acme.test"), (200_000, "large@acme.test")] {
        let (tenant, user) = f.store.sign_up("Acme", admin(email)).await.unwrap();
        let dev = f
            .store
            .create_device(
                &Scope::Tenant(tenant.id),
                device("Meter", &format!("tok-{n}")),
            )
            .await
            .unwrap();
        for start in (0..n).step_by(10_000) {
            let points = (start..(start + 10_000).min(n))
                .map(|i| thingsafe_core::payload::Point {
                    ts: i as i64,
                    key: "power".into(),
                    value: thingsafe_core::payload::Value::Long(i as i64),
                })
                .collect();
            f.store.append_telemetry(&dev, points).await.unwrap();
            f.store.flusher.flush_all().await.unwrap();
        }
        let id = dev.id.to_string();
        let count = || {
            let readers = f.store.readers.clone();
            let id = id.clone();
            async move {
                readers
                    .read(move |c| {
                        Ok(c.query_row(
                            "SELECT (SELECT COUNT(*) FROM telemetry WHERE device_id = ?1)
                                  + (SELECT COUNT(*) FROM telemetry_log WHERE device_id = ?1)",
                            [id],
                            |r| r.get::<_, i64>(0),
                        )?)
                    })
                    .await
                    .unwrap()
            }
        };
        let before = count().await;
        let started = std::time::Instant::now();
        f.store.erase_account(user.id).await.unwrap();
        let took = started.elapsed();
        assert_eq!(
            count().await,
            before,
            "no row was touched by the erasure itself"
        );
        assert!(
            f.store
                .device_by_token(&format!("tok-{n}"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(f.store.login_record(email).await.unwrap().is_none());
        // For information only (timings are never asserted): cargo test -- --nocapture
        println!(
            "erasing a tenant with {n} points took {took:?} ({before} rows left for the purge)"
        );
    }
}

/// A device certificate's credentials, from a fresh self-signed certificate.
fn certificate(n: u8) -> DeviceCredentials {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![format!("device-{n}")])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    DeviceCredentials::x509_certificate(&cert.pem()).unwrap()
}

#[tokio::test]
async fn x509_credentials_replace_the_token_and_find_the_device_by_its_certificate() {
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let a = Scope::Tenant(t.id);
    let dev = f
        .store
        .create_device(&a, device("Meter", "meter-token"))
        .await
        .unwrap();
    let other = f
        .store
        .create_device(&a, device("Pump", "pump-token"))
        .await
        .unwrap();
    let cert = certificate(1);
    let DeviceCredentials::X509Certificate { fingerprint, pem } = cert.clone() else {
        unreachable!()
    };
    f.store
        .set_device_credentials(&a, dev.id, cert.clone())
        .await
        .unwrap();
    assert_eq!(f.store.device_credentials(&a, dev.id).await.unwrap(), cert);
    assert_eq!(
        f.store.device_by_certificate(&fingerprint).await.unwrap(),
        Some(dev.clone())
    );
    // The old token is gone; the fingerprint is no token; other certificates are no one.
    assert_eq!(f.store.device_by_token("meter-token").await.unwrap(), None);
    assert_eq!(f.store.device_by_token(&fingerprint).await.unwrap(), None);
    let DeviceCredentials::X509Certificate {
        fingerprint: unknown,
        ..
    } = certificate(2)
    else {
        unreachable!()
    };
    assert_eq!(f.store.device_by_certificate(&unknown).await.unwrap(), None);
    // One certificate, one device.
    let taken = f.store.set_device_credentials(&a, other.id, cert).await;
    assert!(
        matches!(&taken, Err(StoreError::Conflict(m)) if m.contains("certificate")),
        "{taken:?}"
    );
    // Back to a token, and the certificate no longer finds the device.
    let token = DeviceCredentials::AccessToken("meter-token-2".into());
    f.store
        .set_device_credentials(&a, other.id, token)
        .await
        .unwrap();
    f.store
        .set_device_credentials(
            &a,
            dev.id,
            DeviceCredentials::AccessToken("meter-token".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        f.store.device_by_certificate(&fingerprint).await.unwrap(),
        None
    );
    assert_eq!(
        f.store.device_by_token("meter-token").await.unwrap(),
        Some(dev.clone())
    );
    let last = certificate(3);
    f.store
        .set_device_credentials(&a, dev.id, last.clone())
        .await
        .unwrap();
    // Certificates are sealed at rest like tokens (neither the PEM's base64 nor the DER).
    drop(f.store);
    let DeviceCredentials::X509Certificate { pem: last, .. } = last else {
        unreachable!()
    };
    for pem in [pem, last] {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64_decode(&body);
        for file in std::fs::read_dir(&f.dir).unwrap() {
            let path = file.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let found = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
            assert!(
                !found(&body.as_bytes()[..40]) && !found(&der[..40]),
                "the certificate in plaintext in {}",
                path.display()
            );
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Migration 16 makes `device_profile` anew (a CHECK constraint changed): the devices in
/// a profile must stay in it, which they would not if the old table's rows were deleted
/// with foreign keys on (`ON DELETE SET NULL`).
#[tokio::test]
async fn remaking_the_profile_table_keeps_the_devices_in_their_profiles() {
    let f = fixture();
    let (tenant, _) = f.store.sign_up("Acme", admin("m@acme.test")).await.unwrap();
    let scope = Scope::Tenant(tenant.id);
    let profile = f
        .store
        .create_device_profile(
            &scope,
            crate::NewDeviceProfile {
                name: "Meters".into(),
                provision_type: thingsafe_core::model::ProvisionType::AllowCreateNewDevices,
                provision_device_key: Some("key-1".into()),
                provision_device_secret: Some("secret-1".into()),
                x509: None,
            },
        )
        .await
        .unwrap();
    let meter = f
        .store
        .create_device(&scope, device("Meter", "tokMeter"))
        .await
        .unwrap();
    f.store
        .set_device_profile(&scope, meter.id, Some(profile.id))
        .await
        .unwrap();
    let dir = f.dir.clone();
    drop(f.store);

    let mut conn = Connection::open(dir.join(DATA_FILE)).unwrap();
    pool::configure(&conn).unwrap();
    conn.pragma_update(None, "user_version", 15).unwrap();
    migrate(&mut conn).unwrap();
    let foreign_keys: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert!(foreign_keys, "foreign keys are on again after migrating");
    drop(conn);

    let (master, _) = MasterKey::load_or_create(&dir, None).unwrap();
    let vault = Arc::new(Vault::open(&dir, master).unwrap());
    let store = SqliteStore::open(&dir, vault).unwrap();
    assert_eq!(
        store.device_profile_of(&scope, meter.id).await.unwrap(),
        Some(profile.id)
    );
    let again = store.device_profile(&scope, profile.id).await.unwrap();
    assert_eq!(again, profile);
}

#[tokio::test]
async fn persistent_rpc_is_sealed_scoped_kept_after_restart_and_expires_by_retention() {
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("a@acme.test")).await.unwrap();
    let scope = Scope::Tenant(t.id);
    let d = f
        .store
        .create_device(&scope, device("Pump", "tokPump"))
        .await
        .unwrap();
    let new = crate::NewPersistentRpc {
        method: "unlockDoorOfGwendolyn".into(),
        params: serde_json::json!({"pin": "Pin-4242-Zq"}),
        oneway: false,
        expires_ms: now_ms() + 60_000,
        retries: 1,
        additional_info: Some(serde_json::json!({"note": "Flat 7b Hollyhock"})),
    };
    let rpc = f.store.rpc_persist(&d, new).await.unwrap();
    assert_eq!(rpc.status, crate::RpcStatus::Queued);

    // Delivered and answered: the answer is stored, sealed too.
    let taken = f.store.rpc_take(d.id);
    assert_eq!(taken.len(), 1);
    f.store.rpc_delivered(d.id, taken[0].id);
    f.store.rpc_respond(
        d.id,
        taken[0].id,
        serde_json::json!({"opened": "Answer-Xylophone"}),
    );
    let mut done = None;
    for _ in 0..100 {
        let got = f.store.persistent_rpc(&scope, rpc.id).await.unwrap();
        if got.status == crate::RpcStatus::Successful {
            done = Some(got);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let done = done.expect("stored as SUCCESSFUL");
    assert_eq!(
        done.response,
        Some(serde_json::json!({"opened": "Answer-Xylophone"}))
    );
    assert_eq!(done.method, "unlockDoorOfGwendolyn");

    // Another tenant: not found, as what does not exist.
    let (other, _) = f
        .store
        .sign_up("Bravo", admin("b@bravo.test"))
        .await
        .unwrap();
    let other = Scope::Tenant(other.id);
    assert!(matches!(
        f.store.persistent_rpc(&other, rpc.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.delete_persistent_rpc(&other, rpc.id).await,
        Err(StoreError::NotFound(_))
    ));

    // No file of the data directory holds the command, its details or the answer.
    for needle in [
        "unlockDoorOfGwendolyn",
        "Pin-4242-Zq",
        "Hollyhock",
        "Answer-Xylophone",
    ] {
        for entry in std::fs::read_dir(&f.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in plaintext in {}",
                path.display()
            );
        }
    }

    // Finished commands go with the `[records]` retention; pending ones stay.
    let pending = f
        .store
        .rpc_persist(
            &d,
            crate::NewPersistentRpc {
                method: "later".into(),
                params: serde_json::Value::Null,
                oneway: true,
                expires_ms: now_ms() + 60_000,
                retries: 0,
                additional_info: None,
            },
        )
        .await
        .unwrap();
    let cuts = crate::RecordCuts {
        rpc_calls: Some(now_ms() + 1),
        ..Default::default()
    };
    f.store.expire_records(&cuts).await.unwrap();
    assert!(matches!(
        f.store.persistent_rpc(&scope, rpc.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        f.store
            .persistent_rpc(&scope, pending.id)
            .await
            .unwrap()
            .status,
        crate::RpcStatus::Queued
    );
}

fn key_profile(name: &str, key: &str) -> crate::NewDeviceProfile {
    crate::NewDeviceProfile {
        name: name.into(),
        provision_type: thingsafe_core::model::ProvisionType::AllowCreateNewDevices,
        provision_device_key: Some(key.into()),
        provision_device_secret: Some("secret".into()),
        x509: None,
    }
}

fn ca_profile(name: &str, ca_pem: &str) -> crate::NewDeviceProfile {
    crate::NewDeviceProfile {
        name: name.into(),
        provision_type: thingsafe_core::model::ProvisionType::X509CertificateChain,
        provision_device_key: None,
        provision_device_secret: Some(ca_pem.into()),
        x509: Some(thingsafe_core::model::X509ChainProvisioning::new("(.*)", true).unwrap()),
    }
}

/// Deleting a profile: only its own tenant's administrators reach it, never while a
/// device is in it, and its provisioning key and CA are free for any profile afterwards.
#[tokio::test]
async fn a_profile_is_deleted_by_its_tenant_only_when_empty_and_frees_its_key_and_ca() {
    let f = fixture();
    let (acme, _) = f.store.sign_up("Acme", admin("d@acme.test")).await.unwrap();
    let (other, _) = f
        .store
        .sign_up("Other", admin("d@other.test"))
        .await
        .unwrap();
    let (acme_scope, other_scope) = (Scope::Tenant(acme.id), Scope::Tenant(other.id));
    let meters = f
        .store
        .create_device_profile(&acme_scope, key_profile("Meters", "meters-key"))
        .await
        .unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = params.self_signed(&ca_key).unwrap().pem();
    let by_ca = f
        .store
        .create_device_profile(&acme_scope, ca_profile("By CA", &ca_pem))
        .await
        .unwrap();

    // Another tenant, or a customer of this one, reaches neither.
    for id in [meters.id, by_ca.id] {
        assert!(matches!(
            f.store.delete_device_profile(&other_scope, id).await,
            Err(StoreError::NotFound(_))
        ));
    }
    let customer = f.store.create_customer(&acme_scope, "Shop").await.unwrap();
    let customer_scope = Scope::Customer {
        tenant: acme.id,
        customer: customer.id,
    };
    assert!(matches!(
        f.store
            .delete_device_profile(&customer_scope, meters.id)
            .await,
        Err(StoreError::Forbidden(_))
    ));
    // Taken while they exist: by the other tenant too.
    assert!(matches!(
        f.store
            .create_device_profile(&other_scope, key_profile("Mine", "meters-key"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        f.store
            .create_device_profile(&other_scope, ca_profile("Mine", &ca_pem))
            .await,
        Err(StoreError::Conflict(_))
    ));

    // A device in the profile: refused, saying how many, and nothing is deleted.
    let meter = f
        .store
        .create_device(&acme_scope, device("Meter 1", "tokMeter1"))
        .await
        .unwrap();
    f.store
        .set_device_profile(&acme_scope, meter.id, Some(meters.id))
        .await
        .unwrap();
    match f.store.delete_device_profile(&acme_scope, meters.id).await {
        Err(StoreError::Invalid(m)) => assert_eq!(
            m,
            "the device profile “Meters” is used by 1 device: move or delete it first"
        ),
        other => panic!("deleting a profile with a device: {other:?}"),
    }
    assert_eq!(
        f.store
            .device_profile(&acme_scope, meters.id)
            .await
            .unwrap(),
        meters
    );

    // Empty again: deleted, and gone from reads and lists.
    f.store
        .set_device_profile(&acme_scope, meter.id, None)
        .await
        .unwrap();
    f.store
        .delete_device_profile(&acme_scope, meters.id)
        .await
        .unwrap();
    f.store
        .delete_device_profile(&acme_scope, by_ca.id)
        .await
        .unwrap();
    assert!(matches!(
        f.store.device_profile(&acme_scope, meters.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store.delete_device_profile(&acme_scope, meters.id).await,
        Err(StoreError::NotFound(_))
    ));
    let left = f
        .store
        .device_profiles(&acme_scope, &all_pages())
        .await
        .unwrap();
    assert_eq!(left.total_elements, 0);
    assert_eq!(
        f.store.device(&acme_scope, meter.id).await.unwrap().name,
        "Meter 1",
        "the device moved out stays"
    );

    // The key and the CA are free: another tenant registers them, and they lead there.
    let theirs = f
        .store
        .create_device_profile(&other_scope, key_profile("Mine", "meters-key"))
        .await
        .unwrap();
    let their_ca = f
        .store
        .create_device_profile(&other_scope, ca_profile("Mine by CA", &ca_pem))
        .await
        .unwrap();
    let found = f
        .store
        .certificate_chain_profile(std::slice::from_ref(
            their_ca.provision_device_key.as_ref().unwrap(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.tenant_id), (their_ca.id, other.id));
    assert_eq!(theirs.tenant_id, other.id);
}

/// Pending persistent commands live in memory until they finish: a device holds at most
/// `MAX_PENDING_PER_DEVICE`, and a finished or deleted one makes room.
#[tokio::test]
async fn a_device_holds_a_bounded_number_of_pending_persistent_commands() {
    use super::persistent_rpc::MAX_PENDING_PER_DEVICE;
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("q@acme.test")).await.unwrap();
    let scope = Scope::Tenant(t.id);
    let d = f
        .store
        .create_device(&scope, device("Valve", "tokValve"))
        .await
        .unwrap();
    let new = || crate::NewPersistentRpc {
        method: "close".into(),
        params: serde_json::json!({}),
        oneway: true,
        expires_ms: now_ms() + 3_600_000,
        retries: 0,
        additional_info: None,
    };
    let first = f.store.rpc_persist(&d, new()).await.unwrap();
    for _ in 1..MAX_PENDING_PER_DEVICE {
        f.store.rpc_persist(&d, new()).await.unwrap();
    }
    let refused = f.store.rpc_persist(&d, new()).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Invalid(m) if m.contains("1000 persistent commands waiting")),
        "{refused:?}"
    );
    // Another device is not held back by this one.
    let other = f
        .store
        .create_device(&scope, device("Pump", "tokPump2"))
        .await
        .unwrap();
    f.store.rpc_persist(&other, new()).await.unwrap();
    f.store
        .delete_persistent_rpc(&scope, first.id)
        .await
        .unwrap();
    f.store.rpc_persist(&d, new()).await.unwrap();
}

/// ThingsBoard clients send a device's profile with every save: saved in the profile it is
/// in, a pre-provisioned device that fetched its credentials stays provisioned (it cannot
/// fetch them again); moved out and back, it waits for them afresh.
#[tokio::test]
async fn saving_a_device_in_its_own_profile_keeps_it_provisioned() {
    use thingsafe_core::model::provisioning::{ProvisionOutcome, ProvisionRequest};
    let f = fixture();
    let (t, _) = f.store.sign_up("Acme", admin("p@acme.test")).await.unwrap();
    let scope = Scope::Tenant(t.id);
    let profile = f
        .store
        .create_device_profile(
            &scope,
            crate::NewDeviceProfile {
                name: "Meters".into(),
                provision_type: thingsafe_core::model::ProvisionType::CheckPreProvisionedDevices,
                provision_device_key: Some("pre-key".into()),
                provision_device_secret: Some("pre-secret".into()),
                x509: None,
            },
        )
        .await
        .unwrap();
    let meter = f
        .store
        .create_device(&scope, device("Meter 9", "tokMeter9"))
        .await
        .unwrap();
    f.store
        .set_device_profile(&scope, meter.id, Some(profile.id))
        .await
        .unwrap();
    let request = ProvisionRequest {
        device_name: Some("Meter 9".into()),
        provision_device_key: "pre-key".into(),
        provision_device_secret: "pre-secret".into(),
        token: None,
    };
    let fetch = || f.store.provision_device(&request);
    assert!(matches!(
        fetch().await.unwrap(),
        ProvisionOutcome::Success(_)
    ));
    assert_eq!(
        fetch().await.unwrap(),
        ProvisionOutcome::Failure,
        "once only"
    );
    f.store
        .set_device_profile(&scope, meter.id, Some(profile.id))
        .await
        .unwrap();
    assert_eq!(
        fetch().await.unwrap(),
        ProvisionOutcome::Failure,
        "saved in its own profile, still provisioned"
    );
    f.store
        .set_device_profile(&scope, meter.id, None)
        .await
        .unwrap();
    f.store
        .set_device_profile(&scope, meter.id, Some(profile.id))
        .await
        .unwrap();
    assert!(matches!(
        fetch().await.unwrap(),
        ProvisionOutcome::Success(_)
    ));
}
