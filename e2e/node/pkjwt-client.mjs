// pkjwt-client.mjs: the TypeScript SDK's private_key_jwt client
// authentication (createPrivateKeyJwtAuth, the assertion builder behind
// PrivateKeyJwtProvider) at a caddy-mcpauth token endpoint: discovery, the
// authorization code exchange and one refresh, each with an RS256 client
// assertion (iss = sub = client id, aud = the issuer, a fresh jti). The
// code comes from a login the Go test drove in the hosted pages.
//
// Env: ISSUER, CLIENT_ID, CODE, CODE_VERIFIER, REDIRECT_URI, RESOURCE,
// PRIVATE_KEY_PKCS8 (PEM), NODE_EXTRA_CA_CERTS (the server's CA).
// Prints {"access_token","refresh_token","refreshed_access_token","refreshed_refresh_token","auth_methods"}.
import {
  discoverAuthorizationServerMetadata,
  exchangeAuthorization,
  refreshAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { createPrivateKeyJwtAuth } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`pkjwt-client: ${k} is required`);
    process.exit(2);
  }
  return v;
};
const issuer = env('ISSUER');
const clientId = env('CLIENT_ID');
const resource = new URL(env('RESOURCE'));

const metadata = await discoverAuthorizationServerMetadata(issuer);
if (!metadata?.token_endpoint_auth_methods_supported?.includes('private_key_jwt')) {
  console.error('pkjwt-client: the server does not advertise private_key_jwt');
  process.exit(1);
}
const addClientAuthentication = createPrivateKeyJwtAuth({
  issuer: clientId,
  subject: clientId,
  privateKey: env('PRIVATE_KEY_PKCS8'),
  alg: 'RS256',
  lifetimeSeconds: 120,
});
const clientInformation = { client_id: clientId };
const tokens = await exchangeAuthorization(issuer, {
  metadata,
  clientInformation,
  authorizationCode: env('CODE'),
  codeVerifier: env('CODE_VERIFIER'),
  redirectUri: env('REDIRECT_URI'),
  resource,
  addClientAuthentication,
});
const refreshed = await refreshAuthorization(issuer, {
  metadata,
  clientInformation,
  refreshToken: tokens.refresh_token,
  resource,
  addClientAuthentication,
});
process.stdout.write(JSON.stringify({
  access_token: tokens.access_token,
  refresh_token: tokens.refresh_token,
  refreshed_access_token: refreshed.access_token,
  refreshed_refresh_token: refreshed.refresh_token,
  auth_methods: metadata.token_endpoint_auth_methods_supported,
}) + '\n');
