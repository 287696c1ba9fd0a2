"""Python authlib + requests as a client of wskit's OAuth2 server, then a Python
`websockets` connection with the token (accepted), refused after revocation.

Usage: authlib_client.py BASE_URL PUBLIC_CLIENT_ID CONFIDENTIAL_CLIENT_ID SECRET
Prints one line per step; exits non-zero on the first failure.
"""
import re
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from websockets.sync.client import connect
from websockets.exceptions import InvalidStatus

base, public_id, conf_id, secret = sys.argv[1:5]
meta = requests.get(base + "/.well-known/oauth-authorization-server", timeout=10).json()
assert meta["issuer"] == base, meta
assert meta["code_challenge_methods_supported"] == ["S256"], meta
print("metadata ok")

# Authorization code + PKCE, the browser part driven through the sign-in form.
redirect_uri = "http://127.0.0.1:5555/cb"
client = OAuth2Session(public_id, redirect_uri=redirect_uri, scope="chat", code_challenge_method="S256")
verifier = generate_token(48)
url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
browser = requests.Session()
page = browser.get(url, timeout=10)
assert page.status_code == 200, page.text
assert page.headers["X-Frame-Options"] == "DENY"
form = dict(re.findall(r'name="(id|csrf)" value="([^"]*)"', page.text))
form.update(username="alice", password="wonderland", action="allow")
answer = browser.post(meta["authorization_endpoint"], data=form, allow_redirects=False, timeout=10)
assert answer.status_code == 302, (answer.status_code, answer.text)
location = answer.headers["Location"]
assert "iss=" in location and "state=" + state in location, location
token = client.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
assert token["token_type"] == "Bearer" and "refresh_token" in token, token
print("code + PKCE ok")

api = requests.get(base + "/api", headers={"Authorization": "Bearer " + token["access_token"]}, timeout=10)
assert api.status_code == 200 and "hello alice" in api.text, api.text

# Refresh with rotation.
old_refresh = token["refresh_token"]
token = client.refresh_token(meta["token_endpoint"], refresh_token=old_refresh)
assert token["refresh_token"] != old_refresh, token
print("refresh ok")

# Client credentials (client_secret_basic).
backend = OAuth2Session(conf_id, secret, token_endpoint_auth_method="client_secret_basic")
cc = backend.fetch_token(meta["token_endpoint"], grant_type="client_credentials", scope="jobs")
assert "access_token" in cc and "refresh_token" not in cc, cc
print("client credentials ok")

# Introspection (RFC 7662) by the confidential client.
info = backend.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
assert info["active"] is True and info["sub"] == "alice" and info["client_id"] == public_id, info
print("introspection ok")

# A WebSocket with the token is accepted...
ws_url = base.replace("http://", "ws://") + "/chat"
with connect(ws_url, additional_headers={"Authorization": "Bearer " + token["access_token"]}) as ws:
    assert ws.recv(timeout=10) == "hello alice"
print("websocket ok")

# ... and refused after revocation (RFC 7009).
revoked = client.revoke_token(meta["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token")
assert revoked.status_code == 200, revoked.text
info = backend.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
assert info == {"active": False}, info
try:
    with connect(ws_url, additional_headers={"Authorization": "Bearer " + token["access_token"]}):
        raise SystemExit("websocket accepted a revoked token")
except InvalidStatus as e:
    assert e.response.status_code == 401, e
print("revocation ok")
print("ALL OK")
