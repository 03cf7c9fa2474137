use super::*;
use thingsafe_core::{TenantId, UserId};

fn vault(dir: &Path) -> Vault {
    let (master, created) = MasterKey::load_or_create(dir, None).unwrap();
    let _ = created;
    Vault::open(dir, master).unwrap()
}

#[test]
fn sealed_values_open_only_with_their_owner_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let alice = Owner::User(UserId::random());
    let bob = Owner::User(UserId::random());
    v.ensure_key(alice).unwrap();
    v.ensure_key(bob).unwrap();

    let sealed = v
        .seal(alice, b"user.email:1", b"alice@example.com")
        .unwrap();
    assert_eq!(sealed.len(), "alice@example.com".len() + seal::OVERHEAD);
    assert!(!sealed.windows(5).any(|w| w == b"alice"));
    assert_eq!(
        v.unseal(alice, b"user.email:1", &sealed).unwrap(),
        b"alice@example.com"
    );
    assert!(matches!(
        v.unseal(bob, b"user.email:1", &sealed),
        Err(VaultError::Tampered)
    ));
    assert!(matches!(
        v.unseal(alice, b"user.email:2", &sealed),
        Err(VaultError::Tampered)
    ));

    let mut flipped = sealed.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(matches!(
        v.unseal(alice, b"user.email:1", &flipped),
        Err(VaultError::Tampered)
    ));
    assert!(matches!(
        v.unseal(alice, b"user.email:1", &sealed[..10]),
        Err(VaultError::Malformed(_))
    ));
}

#[test]
fn shredding_makes_sealed_data_unreadable_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let tenant = Owner::Tenant(TenantId::random());
    v.ensure_key(tenant).unwrap();
    let sealed = v.seal(tenant, b"x", b"telemetry").unwrap();

    // The wrapped key's bytes as they are on disk before the shred.
    let wrapped: Vec<u8> = rusqlite::Connection::open(dir.path().join(KEYSTORE_FILE))
        .unwrap()
        .query_row(
            "SELECT wrapped FROM data_key WHERE name = ?1",
            [tenant.key_name()],
            |r| r.get(0),
        )
        .unwrap();

    let at = v.shred(tenant).unwrap();
    assert!(
        matches!(v.unseal(tenant, b"x", &sealed), Err(VaultError::KeyDestroyed(_, t)) if t == at)
    );
    assert_eq!(
        v.key_state(tenant).unwrap(),
        KeyState::Destroyed { at_ms: at }
    );
    // Idempotent, keeps the first time, and the key is never recreated.
    assert_eq!(v.shred(tenant).unwrap(), at);
    assert!(matches!(
        v.ensure_key(tenant),
        Err(VaultError::KeyDestroyed(..))
    ));
    drop(v);

    // A fresh process (empty cache) cannot open it either...
    let v = vault(dir.path());
    assert!(matches!(
        v.unseal(tenant, b"x", &sealed),
        Err(VaultError::KeyDestroyed(..))
    ));
    // ...and the wrapped key's bytes are gone from every file of the key store.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(wrapped.len())
                .any(|w| w == wrapped.as_slice()),
            "wrapped key still in {}",
            path.display()
        );
    }
}

#[test]
fn a_wrong_master_key_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(vault(dir.path()));
    let other = MasterKey::generate();
    let err = Vault::open(dir.path(), other).err().expect("must refuse");
    assert!(matches!(err, VaultError::WrongMasterKey(_)));
    assert!(err.to_string().contains("THINGSAFE_MASTER_KEY"));
}

#[test]
fn the_master_key_file_is_private_and_env_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (_, created) = MasterKey::load_or_create(dir.path(), None).unwrap();
    assert!(created);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (_, created) = MasterKey::load_or_create(dir.path(), None).unwrap();
    assert!(!created);
    let err = MasterKey::from_hex("abc").err().unwrap();
    assert!(err.to_string().contains("64 hexadecimal"), "{err}");
    let key = MasterKey::generate();
    assert!(MasterKey::from_hex(&format!(" {} \n", key.to_hex().as_str())).is_ok());
}

#[test]
fn blind_indexes_are_keyed_and_domain_separated() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let a = v.blind_index("user.email", b"alice@example.com");
    assert_eq!(a, v.blind_index("user.email", b"alice@example.com"));
    assert_ne!(a, v.blind_index("device.token", b"alice@example.com"));
    drop(v);
    // Stable across restarts (the key is in the key store), different in another install.
    assert_eq!(
        a,
        vault(dir.path()).blind_index("user.email", b"alice@example.com")
    );
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        a,
        vault(other.path()).blind_index("user.email", b"alice@example.com")
    );
}

#[test]
fn passwords_hash_with_argon2id() {
    let h = password::hash("correct horse battery");
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(password::verify("correct horse battery", &h));
    assert!(!password::verify("wrong horse battery", &h));
    assert!(!password::verify("anything", "not a phc string"));
}

#[test]
fn random_tokens_have_the_asked_shape() {
    let t = random_alphanumeric(20);
    assert_eq!(t.len(), 20);
    assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(random_token(32), random_token(32));
}

#[test]
fn rotation_rewraps_every_key_and_keeps_what_it_sealed_readable() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(dir.path());
    let alice = Owner::User(UserId::random());
    v.ensure_key(alice).unwrap();
    let sealed = v.seal(alice, b"a", b"secret").unwrap();
    let index = v.blind_index("x", b"y");
    drop(v);
    let (old, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    let (new, count) = rotate_master_key(dir.path(), &old, true, |_| Ok(())).unwrap();
    assert_eq!(count, 5, "four system keys and alice's");
    let (loaded, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    assert_eq!(loaded.fingerprint(), new.fingerprint());
    assert!(!dir.path().join(NEW_MASTER_KEY_FILE).exists());
    let v = Vault::open(dir.path(), loaded).unwrap();
    assert_eq!(v.unseal(alice, b"a", &sealed).unwrap(), b"secret");
    assert_eq!(v.blind_index("x", b"y"), index);
    drop(v);
    let err = Vault::open(dir.path(), old).err().unwrap().to_string();
    assert!(err.contains("fingerprint"), "{err}");
}

#[test]
fn a_rotation_interrupted_before_its_commit_keeps_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    drop(vault(dir.path()));
    let (old, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    // Crash after step 1: the new key staged, the store not re-wrapped.
    let staged = MasterKey::generate();
    std::fs::write(
        dir.path().join(NEW_MASTER_KEY_FILE),
        staged.to_hex().as_bytes(),
    )
    .unwrap();
    let (loaded, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    assert_eq!(loaded.fingerprint(), old.fingerprint());
    assert!(!dir.path().join(NEW_MASTER_KEY_FILE).exists());
    Vault::open(dir.path(), loaded).unwrap();
}

#[test]
fn a_rotation_interrupted_after_its_commit_is_finished_at_the_next_load() {
    let dir = tempfile::tempdir().unwrap();
    drop(vault(dir.path()));
    let (old, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    // Crash after step 2: re-wrapped and committed, master.key not yet replaced. The
    // announce hook copies the staged file aside; restoring it afterwards recreates the
    // state a crash before the rename leaves.
    let staged_path = dir.path().join(NEW_MASTER_KEY_FILE);
    let aside = dir.path().join("staged.copy");
    let (new, _) = rotate_master_key(dir.path(), &old, true, |_| {
        std::fs::copy(&staged_path, &aside).map(|_| ())
    })
    .unwrap();
    std::fs::write(dir.path().join(MASTER_KEY_FILE), old.to_hex().as_bytes()).unwrap();
    std::fs::rename(&aside, &staged_path).unwrap();
    let (loaded, _) = MasterKey::load_or_create(dir.path(), None).unwrap();
    assert_eq!(loaded.fingerprint(), new.fingerprint());
    assert!(!staged_path.exists());
    Vault::open(dir.path(), loaded).unwrap();
}
