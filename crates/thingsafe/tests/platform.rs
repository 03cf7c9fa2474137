//! The platform core through its real binary and a real HTTP client: what a new user does,
//! tenant isolation, sealing at rest, errors, first-start administration.

mod common;

use common::{PASSWORD, Server, assert_absent_from_files};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_new_user_signs_up_logs_in_and_manages_a_device() {
    let s = Server::start();
    let signup_token = s.sign_up("ada@example.com").await;

    let (status, pair) = s.login("ADA@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let token = pair["token"].as_str().unwrap();
    assert_ne!(token, signup_token);
    assert!(pair["refreshToken"].as_str().unwrap().len() >= 40);

    let (status, me) = s.get("/api/auth/user", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["authority"], "TENANT_ADMIN");
    assert_eq!(me["firstName"], "Ada");

    // Create a device with a chosen token, and one with a generated token.
    let (status, dev) = s
        .call(
            Method::POST,
            "/api/device?accessToken=MyChosenToken42",
            Some(token),
            Some(json!({"name": "Boiler", "type": "heater", "label": "Cellar"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dev}");
    assert_eq!(dev["id"]["entityType"], "DEVICE");
    assert_eq!(dev["name"], "Boiler");
    assert_eq!(dev["type"], "heater");
    assert_eq!(dev["label"], "Cellar");
    assert_eq!(dev["tenantId"]["id"], me["tenantId"]["id"]);
    assert_eq!(
        dev["customerId"]["id"],
        "13814000-1dd2-11b2-8080-808080808080"
    );
    let id = dev["id"]["id"].as_str().unwrap();

    let (status, creds) = s.get(&format!("/api/device/{id}/credentials"), token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(creds["credentialsType"], "ACCESS_TOKEN");
    assert_eq!(creds["credentialsId"], "MyChosenToken42");

    let other = s.create_device(token, "Window sensor").await;
    let (_, creds2) = s
        .get(&format!("/api/device/{other}/credentials"), token)
        .await;
    let generated = creds2["credentialsId"].as_str().unwrap();
    assert_eq!(generated.len(), 20);
    assert!(generated.chars().all(|c| c.is_ascii_alphanumeric()));

    // Change credentials.
    let (status, changed) = s
        .post("/api/device/credentials", token, json!({"deviceId": {"entityType": "DEVICE", "id": other}, "credentialsType": "ACCESS_TOKEN", "credentialsId": "NewToken1"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let (_, creds2) = s
        .get(&format!("/api/device/{other}/credentials"), token)
        .await;
    assert_eq!(creds2["credentialsId"], "NewToken1");
    // A token in use by another device is refused and changes nothing.
    let (status, err) = s
        .post("/api/device/credentials", token, json!({"deviceId": {"id": other}, "credentialsType": "ACCESS_TOKEN", "credentialsId": "MyChosenToken42"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["message"].as_str().unwrap().contains("already used"),
        "{err}"
    );

    // Paging in ThingsBoard's shape, newest first.
    let (status, page) = s.get("/api/tenant/devices?pageSize=1&page=0", token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalElements"], 2);
    assert_eq!(page["totalPages"], 2);
    assert_eq!(page["hasNext"], true);
    assert_eq!(page["data"][0]["name"], "Window sensor");
    let (_, page) = s
        .get(
            "/api/tenant/devices?pageSize=10&page=0&textSearch=boil",
            token,
        )
        .await;
    assert_eq!(page["totalElements"], 1);
    let (_, page) = s
        .get("/api/tenant/devices?pageSize=10&page=0&type=heater", token)
        .await;
    assert_eq!(page["data"][0]["name"], "Boiler");
    let (status, err) = s.get("/api/tenant/devices?page=0", token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["message"].as_str().unwrap().contains("pageSize"),
        "{err}"
    );

    // Duplicate names are refused with the reason.
    let (status, err) = s
        .post("/api/device", token, json!({"name": "Boiler"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("name already exists"),
        "{err}"
    );

    // Delete.
    let (status, _) = s.delete(&format!("/api/device/{id}"), token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = s.get(&format!("/api/device/{id}"), token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["errorCode"], 32);

    // Refresh rotates; logout ends the session.
    let refresh = pair["refreshToken"].as_str().unwrap();
    let (status, new_pair) = s
        .call(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{new_pair}");
    let (status, _) = s
        .call(
            Method::POST,
            "/api/auth/token",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a spent refresh token must not work twice"
    );
    let new_token = new_pair["token"].as_str().unwrap();
    let (status, _) = s.get("/api/auth/user", new_token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call(Method::POST, "/api/auth/logout", Some(new_token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, err) = s.get("/api/auth/user", new_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{err}"
    );
    // The Authorization header works as well as X-Authorization.
    let resp = s
        .http
        .get(s.url("/api/auth/user"))
        .header("Authorization", format!("Bearer {signup_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Everything a tenant holds, for the isolation matrix.
struct TenantWorld {
    token: String,
    device: String,
    customer: String,
    user: String,
}

async fn populate(s: &Server, email: &str) -> TenantWorld {
    let token = s.sign_up(email).await;
    let device = s.create_device(&token, "Thermostat").await;
    let (status, customer) = s
        .post("/api/customer", &token, json!({"title": "Household"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{customer}");
    let customer = customer["id"]["id"].as_str().unwrap().to_string();
    let (status, user) = s
        .post("/api/user", &token, json!({"email": format!("member.{email}"), "authority": "CUSTOMER_USER", "customerId": {"entityType": "CUSTOMER", "id": customer}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let user = user["id"]["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .post(
            &format!("/api/customer/{customer}/device/{device}"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    TenantWorld {
        token,
        device,
        customer,
        user,
    }
}

#[tokio::test]
async fn no_call_of_one_tenant_reaches_anything_of_another() {
    let s = Server::start();
    let a = populate(&s, "a@alpha.test").await;
    let b = populate(&s, "b@bravo.test").await;
    let unknown = "4b1f8a52-0000-4000-8000-000000000000";

    // Each attempt of B on A's ids is answered exactly as the same call on an id that
    // does not exist: existence does not leak.
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/device/{device}".into(), None),
        (Method::DELETE, "/api/device/{device}".into(), None),
        (Method::GET, "/api/device/{device}/credentials".into(), None),
        (
            Method::POST,
            "/api/device/credentials".into(),
            Some(
                json!({"deviceId": {"id": "{device}"}, "credentialsType": "ACCESS_TOKEN", "credentialsId": "stolen"}),
            ),
        ),
        (
            Method::POST,
            "/api/customer/{own_customer}/device/{device}".into(),
            Some(json!({})),
        ),
        (Method::DELETE, "/api/customer/device/{device}".into(), None),
        (
            Method::POST,
            "/api/customer/{customer}/device/{own_device}".into(),
            Some(json!({})),
        ),
        (Method::GET, "/api/customer/{customer}".into(), None),
        (Method::DELETE, "/api/customer/{customer}".into(), None),
        (
            Method::GET,
            "/api/customer/{customer}/users?pageSize=10&page=0".into(),
            None,
        ),
        (
            Method::GET,
            "/api/customer/{customer}/devices?pageSize=10&page=0".into(),
            None,
        ),
        (Method::GET, "/api/user/{user}".into(), None),
        (Method::DELETE, "/api/user/{user}".into(), None),
        (Method::GET, "/api/user/{user}/activationLink".into(), None),
        (
            Method::POST,
            "/api/user".into(),
            Some(
                json!({"email": "intruder@bravo.test", "authority": "CUSTOMER_USER", "customerId": {"id": "{customer}"}}),
            ),
        ),
        (
            Method::POST,
            "/api/device".into(),
            Some(json!({"id": {"entityType": "DEVICE", "id": "{device}"}, "name": "Hijacked"})),
        ),
        (
            Method::POST,
            "/api/customer".into(),
            Some(
                json!({"id": {"entityType": "CUSTOMER", "id": "{customer}"}, "title": "Hijacked"}),
            ),
        ),
    ];
    let fill = |template: &str, device: &str, customer: &str, user: &str| {
        template
            .replace("{device}", device)
            .replace("{customer}", customer)
            .replace("{user}", user)
            .replace("{own_customer}", &b.customer)
            .replace("{own_device}", &b.device)
    };
    for (method, path, body) in &attempts {
        let fill_body = |d: &str, c: &str, u: &str| {
            body.as_ref()
                .map(|v| serde_json::from_str::<Value>(&fill(&v.to_string(), d, c, u)).unwrap())
        };
        let (status, err) = s
            .call(
                method.clone(),
                &fill(path, &a.device, &a.customer, &a.user),
                Some(&b.token),
                fill_body(&a.device, &a.customer, &a.user),
            )
            .await;
        let (status_unknown, err_unknown) = s
            .call(
                method.clone(),
                &fill(path, unknown, unknown, unknown),
                Some(&b.token),
                fill_body(unknown, unknown, unknown),
            )
            .await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
            "{method} {path}: {status} {err}"
        );
        assert_eq!(
            status, status_unknown,
            "{method} {path}: answers differ for a foreign and an unknown id"
        );
        assert_eq!(err["message"], err_unknown["message"], "{method} {path}");
    }

    // Listings of B hold only B's things.
    for path in [
        "/api/tenant/devices?pageSize=100&page=0",
        "/api/customers?pageSize=100&page=0",
        "/api/users?pageSize=100&page=0",
    ] {
        let (status, page) = s.get(path, &b.token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let ids: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"]["id"].as_str().unwrap())
            .collect();
        for foreign in [&a.device, &a.customer, &a.user] {
            assert!(
                !ids.contains(&foreign.as_str()),
                "{path} lists {foreign} of another tenant"
            );
        }
    }

    // A's things are all intact after B's attempts.
    let (status, dev) = s.get(&format!("/api/device/{}", a.device), &a.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dev["customerId"]["id"], a.customer.as_str());
    let (_, creds) = s
        .get(&format!("/api/device/{}/credentials", a.device), &a.token)
        .await;
    assert_ne!(creds["credentialsId"], "stolen");
    assert_eq!(dev["name"], "Thermostat");
    let (status, customer) = s
        .get(&format!("/api/customer/{}", a.customer), &a.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(customer["title"], "Household");
    let (status, renamed) = s
        .post(
            "/api/customer",
            &a.token,
            json!({"id": {"id": a.customer}, "title": "Home"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["title"], "Home");
    let (status, _) = s.get(&format!("/api/user/{}", a.user), &a.token).await;
    assert_eq!(status, StatusCode::OK);
    let (_, users) = s.get("/api/users?pageSize=100&page=0", &a.token).await;
    assert_eq!(
        users["totalElements"], 2,
        "no intruder was created in A: {users}"
    );
}

#[tokio::test]
async fn a_customer_user_sees_only_its_customers_devices() {
    let s = Server::start();
    let admin = s.sign_up("owner@alpha.test").await;
    let (_, home) = s
        .post("/api/customer", &admin, json!({"title": "Home"}))
        .await;
    let home = home["id"]["id"].as_str().unwrap().to_string();
    let (_, office) = s
        .post("/api/customer", &admin, json!({"title": "Office"}))
        .await;
    let office = office["id"]["id"].as_str().unwrap().to_string();
    let mine = s.create_device(&admin, "Home thermostat").await;
    let theirs = s.create_device(&admin, "Office thermostat").await;
    let unassigned = s.create_device(&admin, "Spare").await;
    s.post(
        &format!("/api/customer/{home}/device/{mine}"),
        &admin,
        json!({}),
    )
    .await;
    s.post(
        &format!("/api/customer/{office}/device/{theirs}"),
        &admin,
        json!({}),
    )
    .await;

    // The tenant admin creates a customer user; the user activates with the link.
    let (status, user) = s
        .post("/api/user", &admin, json!({"email": "kid@home.test", "authority": "CUSTOMER_USER", "firstName": "Kim", "customerId": {"entityType": "CUSTOMER", "id": home}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["additionalInfo"]["userActivated"], false);
    let (status, _) = s.login("kid@home.test", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no password yet");
    let (status, link) = s
        .get(
            &format!(
                "/api/user/{}/activationLink",
                user["id"]["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let link = link.as_str().unwrap().to_string();
    assert!(link.starts_with(&s.base), "{link}");
    let activate_token = link.split("activateToken=").nth(1).unwrap();
    let (status, err) = s
        .call(
            Method::POST,
            "/api/noauth/activate",
            None,
            Some(json!({"activateToken": activate_token, "password": "kid@home.test"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the email as password is refused: {err}"
    );
    let (status, _) = s
        .call(
            Method::POST,
            "/api/noauth/activate",
            None,
            Some(json!({"activateToken": activate_token, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call(
            Method::POST,
            "/api/noauth/activate",
            None,
            Some(json!({"activateToken": activate_token, "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an activation token works once"
    );

    let (status, pair) = s.login("kid@home.test", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let kid = pair["token"].as_str().unwrap();

    let (status, page) = s
        .get(
            &format!("/api/customer/{home}/devices?pageSize=10&page=0"),
            kid,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Home thermostat"]);
    let (status, _) = s.get(&format!("/api/device/{mine}"), kid).await;
    assert_eq!(status, StatusCode::OK);
    for other in [&theirs, &unassigned] {
        let (status, _) = s.get(&format!("/api/device/{other}"), kid).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = s
        .get(
            &format!("/api/customer/{office}/devices?pageSize=10&page=0"),
            kid,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Tenant-level calls are refused by role.
    let (status, err) = s.get("/api/tenant/devices?pageSize=10&page=0", kid).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["errorCode"], 20);
    let (status, _) = s
        .post("/api/device", kid, json!({"name": "Mine now"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.delete(&format!("/api/device/{mine}"), kid).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Unassigning takes the device out of the customer's sight.
    let (status, dev) = s
        .delete(&format!("/api/customer/device/{mine}"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        dev["customerId"]["id"],
        "13814000-1dd2-11b2-8080-808080808080"
    );
    let (status, _) = s.get(&format!("/api/device/{mine}"), kid).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn no_email_name_or_token_is_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let version = s.policy_version().await;
    let (status, body) = s
        .call(
            Method::POST,
            "/api/noauth/signup",
            None,
            Some(json!({
                "email": "Quentin.Zebulon@plaintext-check.example", "password": PASSWORD,
                "firstName": "Quentinus", "lastName": "Zebulonski", "birthDate": "1987-06-05",
                "organization": "Zebulonski Widgets", "acceptedPolicyVersion": version
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    let (status, dev) = s
        .call(
            Method::POST,
            "/api/device?accessToken=TokQZ9plaintextXY",
            Some(&token),
            Some(json!({"name": "Quentinus pacemaker", "label": "Zebulonski bedroom"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dev}");
    let (_, customer) = s
        .post(
            "/api/customer",
            &token,
            json!({"title": "Zebulonski Household"}),
        )
        .await;
    s.post("/api/user", &token, json!({"email": "xavier.member@plaintext-check.example", "authority": "CUSTOMER_USER", "firstName": "Xavierus", "customerId": {"id": customer["id"]["id"]}})).await;

    let needles = [
        "quentin.zebulon",
        "plaintext-check",
        "Quentinus",
        "Zebulonski",
        "1987-06-05",
        "TokQZ9plaintextXY",
        "xavier.member",
        "Xavierus",
        "$argon2",
        "correct horse",
    ];
    // While running: database, its WAL, the key store.
    assert!(
        common::files_under(&data)
            .iter()
            .any(|f| f.to_string_lossy().ends_with("-wal"))
    );
    assert_absent_from_files(&data, &needles);
    // After a clean stop (WAL checkpointed into the database file).
    assert!(s.stop().success());
    assert_absent_from_files(&data, &needles);

    // And yet everything reads back after a restart.
    let s = Server::start_in(&data, &[]);
    let (status, pair) = s
        .login("quentin.zebulon@plaintext-check.example", PASSWORD)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, me) = s
        .get("/api/auth/user", pair["token"].as_str().unwrap())
        .await;
    assert_eq!(me["lastName"], "Zebulonski");
    let (_, creds) = s
        .get(
            &format!(
                "/api/device/{}/credentials",
                dev["id"]["id"].as_str().unwrap()
            ),
            pair["token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(creds["credentialsId"], "TokQZ9plaintextXY");
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let s = Server::start();
    let token = s.sign_up("errors@example.com").await;

    // Malformed JSON: 400 with the parser's position.
    let resp = s
        .http
        .post(s.url("/api/device"))
        .header("X-Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body("{\"name\": \"x\",, }")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["message"].as_str().unwrap().contains("line 1 column"),
        "{err}"
    );
    assert_eq!(err["status"], 400);
    assert!(err["timestamp"].as_i64().unwrap() > 0);
    // Missing field.
    let (status, err) = s.post("/api/device", &token, json!({"type": "x"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["message"].as_str().unwrap().contains("name"), "{err}");
    // Unknown route: JSON 404. Wrong method: 405.
    let (status, err) = s.get("/api/nothing/here", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("/api/nothing/here"),
        "{err}"
    );
    let (status, _) = s.call(Method::PUT, "/api/device", Some(&token), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Malformed ids.
    let (status, err) = s.get("/api/device/not-a-uuid", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["message"].as_str().unwrap().contains("UUID"), "{err}");
    // No token, a forged token.
    let (status, err) = s.call(Method::GET, "/api/auth/user", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["errorCode"], 10);
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = s.get("/api/auth/user", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Sign-up validation names the field.
    let version = s.policy_version().await;
    for (body, needle) in [
        (
            json!({"email": "nope", "password": PASSWORD, "birthDate": "1990-01-01", "acceptedPolicyVersion": version}),
            "email",
        ),
        (
            json!({"email": "x@example.com", "password": "x@example.com", "birthDate": "1990-01-01", "acceptedPolicyVersion": version}),
            "must not be the email",
        ),
        (
            json!({"email": "x@example.com", "password": "short", "birthDate": "1990-01-01", "acceptedPolicyVersion": version}),
            "at least 10",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "birthDate": "01/01/1990", "acceptedPolicyVersion": version}),
            "YYYY-MM-DD",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "acceptedPolicyVersion": version}),
            "birth date",
        ),
        (
            json!({"email": "errors@example.com", "password": PASSWORD, "birthDate": "1990-01-01", "acceptedPolicyVersion": version}),
            "already exists",
        ),
    ] {
        let (status, err) = s
            .call(Method::POST, "/api/noauth/signup", None, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }
    // Nothing accepted before is lost: the account still signs in.
    assert_eq!(
        s.login("errors@example.com", PASSWORD).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_account_and_say_so() {
    let s = Server::start_with(&[
        ("THINGSAFE_AUTH_MAX_FAILED_LOGINS", "3"),
        ("THINGSAFE_AUTH_LOCKOUT_SECS", "600"),
    ]);
    s.sign_up("locked@example.com").await;
    for _ in 0..2 {
        let (status, err) = s.login("locked@example.com", "wrong password!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(err["message"], "Invalid username or password");
    }
    let (status, err) = s.login("locked@example.com", "wrong password!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(err["message"].as_str().unwrap().contains("locked"), "{err}");
    // Even the right password is refused while locked.
    let (status, err) = s.login("locked@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("Try again in 10 minute"),
        "{err}"
    );
    // An unknown account gets the same answer as a wrong password.
    let (status, err) = s.login("nobody@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["message"], "Invalid username or password");
}

#[tokio::test]
async fn the_first_start_prints_a_one_time_setup_token_for_the_system_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start_in(&data, &[]);
    let setup = s
        .setup_token
        .clone()
        .expect("a setup token is printed when no administrator exists");
    let body = |token: &str| json!({"setupToken": token, "email": "root@example.com", "password": PASSWORD});
    let (status, _) = s
        .call(Method::POST, "/api/noauth/setup", None, Some(body("wrong")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, pair) = s
        .call(Method::POST, "/api/noauth/setup", None, Some(body(&setup)))
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let (status, again) = s
        .call(Method::POST, "/api/noauth/setup", None, Some(body(&setup)))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the token works once: {again}"
    );

    let sysadmin = pair["token"].as_str().unwrap();
    s.sign_up("tenant@example.com").await;
    let (status, tenants) = s.get("/api/tenants?pageSize=10&page=0", sysadmin).await;
    assert_eq!(status, StatusCode::OK, "{tenants}");
    assert_eq!(tenants["totalElements"], 1);
    // The system administrator does not see tenant data.
    let (status, _) = s
        .get("/api/tenant/devices?pageSize=10&page=0", sysadmin)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // With an administrator in place, a restart prints no token.
    drop(s);
    let s = Server::start_in(&data, &[]);
    assert!(s.setup_token.is_none());
}

#[tokio::test]
async fn the_system_administrator_can_come_from_the_environment_or_the_cli() {
    let s = Server::start_with(&[
        ("THINGSAFE_ADMIN_EMAIL", "env-root@example.com"),
        ("THINGSAFE_ADMIN_PASSWORD", PASSWORD),
    ]);
    assert!(s.setup_token.is_none());
    let (status, pair) = s.login("env-root@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (_, me) = s
        .get("/api/auth/user", pair["token"].as_str().unwrap())
        .await;
    assert_eq!(me["authority"], "SYS_ADMIN");
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |input: &str| {
        let mut child = std::process::Command::new(common::binary())
            .args([
                "admin",
                "create-sysadmin",
                "--email",
                "cli-root@example.com",
                "--data-dir",
            ])
            .arg(&data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let weak = run("short\n");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10"));
    let ok = run(&format!("{PASSWORD}\n"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let again = run(&format!("{PASSWORD}\n"));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let s = Server::start_in(&data, &[]);
    assert!(s.setup_token.is_none());
    assert_eq!(
        s.login("cli-root@example.com", PASSWORD).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_metrics_and_signup_switch() {
    let s = Server::start_with(&[("THINGSAFE_SIGNUP_ENABLED", "false")]);
    let resp = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, err) = s
        .call(
            Method::POST,
            "/api/noauth/signup",
            None,
            Some(json!({"email": "a@b.example", "password": PASSWORD, "birthDate": "1990-01-01", "acceptedPolicyVersion": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        err["message"].as_str().unwrap().contains("signup.enabled"),
        "{err}"
    );
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("thingsafe_http_requests_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/api/noauth/signup\""),
        "{metrics}"
    );
}

#[test]
fn a_bad_config_value_stops_start_up_naming_the_key() {
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--data-dir", "/nonexistent-never-created"])
        .env("THINGSAFE_HTTP_ADDR", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.addr") && err.contains("THINGSAFE_HTTP_ADDR"),
        "{err}"
    );
    assert!(!std::path::Path::new("/nonexistent-never-created").exists());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("thingsafe.toml");
    std::fs::write(&config, "[signup]\nenabled = \"yes please\"\n").unwrap();
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signup.enabled"), "{err}");
}
