// npm oidc-provider as the authorization server for the auth-oauth2-jwt OAuth2 client: a
// confidential client with the client credentials grant, and a native (loopback) public client
// with code + PKCE through the provider's development interactions (login and consent forms).
// Prints "listening on PORT" once ready; runs until killed.
//
//   node oidc_provider_server.mjs PORT

import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: 'svc',
      client_secret: 'svc-secret-for-the-test',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    },
    {
      client_id: 'desktop',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: ['http://127.0.0.1/callback'],
      response_types: ['code'],
    },
  ],
  features: {clientCredentials: {enabled: true}, devInteractions: {enabled: true}},
  pkce: {required: () => true},
  scopes: ['openid', 'offline_access', 'jobs'],
  issueRefreshToken: async () => true,
  findAccount: async (ctx, sub) => ({accountId: sub, claims: async () => ({sub})}),
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
