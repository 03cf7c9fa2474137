"""An outside OAuth2 client written with Authlib (requests integration), unmodified.

Usage: authlib_client.py BASE_URL CA_CERT CLIENT_ID CLIENT_SECRET REDIRECT_URI EMAIL PASSWORD

Does the authorization code flow with PKCE S256 (the person's part, sign-in and consent,
with a requests session as a browser would), refreshes, revokes, introspects, then the
client credentials grant, and a wrong PKCE verifier. Prints one JSON line of what it saw.
"""
import json
import re
import ssl
import sys
from html import unescape
from urllib.parse import urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

base, ca, client_id, secret, redirect_uri, email, password = sys.argv[1:8]


class TrustTheServer(requests.adapters.HTTPAdapter):
    """Trusts the server's self-signed certificate as it is (OpenSSL before 3.x's Python
    3.13 default wants a CA certificate; partial chains accept the leaf itself)."""

    def init_poolmanager(self, *args, **kwargs):
        context = ssl.create_default_context(cafile=ca)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        kwargs["ssl_context"] = context
        return super().init_poolmanager(*args, **kwargs)


def trusting(session):
    session.mount("https://", TrustTheServer())
    return session


authorize_url = f"{base}/oauth2/authorize"
token_url = f"{base}/oauth2/token"
seen = {}


def oauth_session(**kwargs):
    return trusting(OAuth2Session(client_id, secret, redirect_uri=redirect_uri,
                                  code_challenge_method="S256", **kwargs))


def person_consents(url):
    """Signs in and allows on the consent page; returns the redirect back to the app."""
    browser = trusting(requests.Session())
    first = browser.get(url, allow_redirects=False)
    assert first.status_code == 303, first.status_code
    next_path = first.headers["location"]
    assert next_path.startswith("/signin?next="), next_path
    path = urlparse(url)
    signin = browser.post(f"{base}/signin", allow_redirects=False, headers={"Origin": base},
                          data={"email": email, "password": password,
                                "next": path.path + "?" + path.query})
    assert signin.status_code == 303, signin.status_code
    page = browser.get(url, allow_redirects=False)
    assert page.status_code == 200, page.status_code
    form = page.text.split('<form method="post" action="/oauth2/authorize">')[1].split("</form>")[0]
    fields = {unescape(n): unescape(v) for n, v in
              re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', form)}
    fields["decision"] = "allow"
    answer = browser.post(authorize_url, data=fields, allow_redirects=False,
                          headers={"Origin": base})
    assert answer.status_code == 303, answer.status_code
    return answer.headers["location"]


def code_flow(scope):
    s = oauth_session(scope=scope)
    verifier = generate_token(48)
    url, state = s.create_authorization_url(authorize_url, code_verifier=verifier)
    back = person_consents(url)
    token = s.fetch_token(token_url, authorization_response=back, code_verifier=verifier)
    return s, token, verifier


# Code + PKCE.
s, token, _ = code_flow("devices:read telemetry:read")
seen["code_scope"] = token["scope"]
seen["has_refresh"] = "refresh_token" in token
devices = s.get(f"{base}/api/tenant/devices?pageSize=10&page=0")
seen["devices_status"] = devices.status_code
seen["create_status"] = s.post(f"{base}/api/device", json={"name": "From authlib"}).status_code

# Refresh (rotation): the old refresh token is refused afterwards.
old_refresh = token["refresh_token"]
new = s.refresh_token(token_url, refresh_token=old_refresh)
seen["rotated"] = new["refresh_token"] != old_refresh
seen["introspect_before"] = s.introspect_token(f"{base}/oauth2/introspect",
                                               token=new["access_token"]).json()["active"]
try:
    s.refresh_token(token_url, refresh_token=old_refresh)
    seen["reuse"] = "accepted"
except OAuthError as e:
    seen["reuse"] = e.error

# The reuse above revoked the grant, the new tokens too.
seen["introspect_after_reuse"] = s.introspect_token(f"{base}/oauth2/introspect",
                                                    token=new["access_token"]).json()["active"]

# Revocation, on a new grant.
s, token, _ = code_flow("devices:read")
s.revoke_token(f"{base}/oauth2/revoke", token=token["access_token"],
               token_type_hint="access_token")
seen["after_revoke"] = trusting(requests.Session()).get(
    f"{base}/api/tenant/devices?pageSize=10&page=0",
    headers={"X-Authorization": "Bearer " + token["access_token"]}).status_code
seen["introspect_after"] = s.introspect_token(f"{base}/oauth2/introspect",
                                              token=token["access_token"]).json()["active"]

# A wrong PKCE verifier.
s = oauth_session(scope="devices:read")
verifier = generate_token(48)
url, _ = s.create_authorization_url(authorize_url, code_verifier=verifier)
back = person_consents(url)
try:
    s.fetch_token(token_url, authorization_response=back, code_verifier=generate_token(48))
    seen["wrong_verifier"] = "accepted"
except OAuthError as e:
    seen["wrong_verifier"] = e.error

# Client credentials.
machine = trusting(OAuth2Session(client_id, secret, scope="telemetry:read"))
cc = machine.fetch_token(token_url, grant_type="client_credentials")
seen["cc_scope"] = cc["scope"]
seen["cc_refresh"] = "refresh_token" in cc
seen["cc_create_status"] = machine.post(f"{base}/api/device", json={"name": "Nope"}).status_code

print(json.dumps(seen))
