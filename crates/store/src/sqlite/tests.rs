//! Store-level tests: scoping and sealing hold below any API.

use super::*;
use thingsafe_vault::MasterKey;

struct Fixture {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    store: SqliteStore,
}

fn fixture() -> Fixture {
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

fn admin(email: &str) -> NewUser {
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
