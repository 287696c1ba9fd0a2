// npm oauth4webapi (strict about metadata, PKCE and RFC 9207) as a client of the auth-oauth2-jwt
// server: discovery, authorization code + PKCE with the sign-in form driven by fetch, the
// authorization response validated (state, iss), the code exchange, refresh with rotation,
// client credentials, introspection, revocation. Prints "ALL OK" at the end; exits 1 on failure.
//
//   node oauth4webapi_client.mjs BASE_URL PUBLIC_CLIENT_ID CONFIDENTIAL_CLIENT_ID SECRET

import * as oauth from 'oauth4webapi';

const [base, publicId, confId, secret] = process.argv.slice(2);
const insecure = {[oauth.allowInsecureRequests]: true}; // plain http on loopback, for the test
const assert = (ok, what) => {
  if (!ok) throw new Error(what);
};

try {
  const issuer = new URL(base);
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, {...insecure, algorithm: 'oauth2'}));
  assert(as.authorization_response_iss_parameter_supported === true, 'RFC 9207 advertised');
  console.log('discovery ok');

  const client = {client_id: publicId};
  const redirectUri = 'http://127.0.0.1:5555/cb';
  const verifier = oauth.generateRandomCodeVerifier();
  const challenge = await oauth.calculatePKCECodeChallenge(verifier);
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint);
  for (const [k, v] of Object.entries({client_id: publicId, redirect_uri: redirectUri, response_type: 'code', scope: 'chat', code_challenge: challenge, code_challenge_method: 'S256', state})) {
    url.searchParams.set(k, v);
  }
  // The browser part, with fetch: the page, then the form with the CSRF cookie.
  const page = await fetch(url);
  assert(page.status === 200, `sign-in page: ${page.status}`);
  const html = await page.text();
  const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
  const cookie = page.headers.get('set-cookie').split(';')[0];
  const form = new URLSearchParams({id: field('id'), csrf: field('csrf'), username: 'alice', password: 'wonderland', action: 'allow'});
  const answer = await fetch(as.authorization_endpoint, {method: 'POST', body: form, headers: {cookie}, redirect: 'manual'});
  assert(answer.status === 302, `sign-in: ${answer.status}`);
  const params = oauth.validateAuthResponse(as, client, new URL(answer.headers.get('location')), state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as, client, await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, redirectUri, verifier, insecure));
  assert(tokens.access_token && tokens.refresh_token, 'tokens');
  console.log('code + PKCE ok');

  const refreshed = await oauth.processRefreshTokenResponse(
    as, client, await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, insecure));
  assert(refreshed.refresh_token !== tokens.refresh_token, 'rotation');
  console.log('refresh ok');

  const backend = {client_id: confId};
  const auth = oauth.ClientSecretBasic(secret);
  const cc = await oauth.processClientCredentialsResponse(
    as, backend, await oauth.clientCredentialsGrantRequest(as, backend, auth, new URLSearchParams({scope: 'jobs'}), insecure));
  assert(cc.access_token && !cc.refresh_token, 'client credentials');
  console.log('client credentials ok');

  const info = await oauth.processIntrospectionResponse(
    as, backend, await oauth.introspectionRequest(as, backend, auth, refreshed.access_token, insecure));
  assert(info.active === true && info.sub === 'alice' && info.client_id === publicId, JSON.stringify(info));
  console.log('introspection ok');

  await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, oauth.None(), refreshed.access_token, insecure));
  const after = await oauth.processIntrospectionResponse(
    as, backend, await oauth.introspectionRequest(as, backend, auth, refreshed.access_token, insecure));
  assert(after.active === false, 'revoked');
  console.log('revocation ok');
  console.log('ALL OK');
} catch (e) {
  console.error(`oauth4webapi: FAILED: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
}
