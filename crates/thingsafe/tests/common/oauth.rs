//! OAuth2 from the outside: registering clients, client-credentials tokens over plain
//! form posts, and the browser's part of the authorization code flow (sign-in, consent)
//! done with reqwest and the console's cookies and CSRF token, as a browser would.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{PASSWORD, Server};

/// Registers a client as the tenant administrator `admin`; returns the answer (with the
/// secret, for a confidential client).
pub async fn register_client(s: &Server, admin: &str, body: Value) -> Value {
    let (status, client) = s.post("/api/oauth2/clients", admin, body).await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    client
}

/// A confidential client with every grant and `scopes`, redirecting to `redirect`.
pub async fn full_client(s: &Server, admin: &str, scopes: &[&str], redirect: &str) -> Value {
    register_client(
        s,
        admin,
        json!({
            "name": "Outside app",
            "redirectUris": [redirect],
            "grantTypes": ["authorization_code", "refresh_token", "client_credentials"],
            "scopes": scopes,
        }),
    )
    .await
}

/// POSTs a form to an OAuth2 endpoint as the client `id` (HTTP Basic when `secret`).
pub async fn form_post(
    s: &Server,
    path: &str,
    id: &str,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = s.http.post(s.url(path));
    let mut form = form.to_vec();
    match secret {
        Some(secret) => req = req.basic_auth(id, Some(secret)),
        None => form.push(("client_id", id)),
    }
    let resp = req.form(&form).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A client-credentials access token of the client `id`/`secret` with `scope`.
pub async fn client_credentials_token(s: &Server, id: &str, secret: &str, scope: &str) -> String {
    let (status, body) = form_post(
        s,
        "/oauth2/token",
        id,
        Some(secret),
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// A browser signed in to the console: its cookies, on a client that follows no
/// redirects (the test reads them).
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: String,
}

/// Reverses askama's HTML escaping of attribute values.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `name`/`value` of every hidden input of the consent form, as a browser submits
/// them (the page's other forms, such as sign-out, are not sent).
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let form = html
        .split("<form method=\"post\" action=\"/oauth2/authorize\">")
        .nth(1)
        .and_then(|rest| rest.split("</form>").next())
        .expect("the consent form");
    form.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|rest| {
            let attr = |name: &str| {
                rest.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .map(unescape)
            };
            Some((attr("name")?, attr("value")?))
        })
        .collect()
}

impl Browser {
    /// Signs `email` in through the console's form; `next` is where the form sends it.
    pub async fn sign_in(
        http: reqwest::Client,
        base: &str,
        email: &str,
        next: &str,
    ) -> (Browser, String) {
        let resp = http
            .post(format!("{base}/signin"))
            .header("Origin", base)
            .form(&[("email", email), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-in");
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let browser = Browser {
            http,
            base: base.to_string(),
            cookies,
        };
        (browser, location)
    }

    /// GETs `path_or_url` (a path of this server, or a full URL) with the cookies.
    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_string()
        };
        self.http
            .get(url)
            .header("Cookie", &self.cookies)
            .send()
            .await
            .unwrap()
    }

    /// Submits the consent page's form with `decision` (`allow`, `deny`); returns the
    /// response (a redirect to the application, or an error page).
    pub async fn answer(&self, consent_html: &str, decision: &str) -> reqwest::Response {
        let mut form = hidden_inputs(consent_html);
        form.push(("decision".into(), decision.into()));
        self.post_consent(&form).await
    }

    pub async fn post_consent(&self, form: &[(String, String)]) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth2/authorize", self.base))
            .header("Cookie", &self.cookies)
            .header("Origin", &self.base)
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

/// The query parameter `name` of `url` (decoded).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
