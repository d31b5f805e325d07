#!/usr/bin/env node
// Writes a chromium-pages.mjs spec for an authorization server's hosted pages:
// registers a public client by DCR, then visits the authorization URL (login
// page), signs in ($MCP_USER/$MCP_PASSWORD), checks the consent page, approves,
// reaches the loopback callback, and visits an error page (unknown client).
//
//   ISSUER=https://localhost:8443 RESOURCE=https://localhost:8443/mcp node browser-spec.mjs > spec.json
//
// Environment: ISSUER, RESOURCE (optional), SCOPE (optional), CALLBACK
// (default http://127.0.0.1:8977/callback), NODE_EXTRA_CA_CERTS for https.
import { createHash, randomBytes } from 'node:crypto';

const issuer = process.env.ISSUER;
if (!issuer) {
  console.error('browser-spec: ISSUER is required');
  process.exit(2);
}
const callback = process.env.CALLBACK ?? 'http://127.0.0.1:8977/callback';
const base = new URL(issuer);
const md = await (await fetch(`${base.origin}/.well-known/oauth-authorization-server${base.pathname.replace(/\/$/, '')}`)).json();
if (!md.registration_endpoint) {
  console.error('browser-spec: the authorization server has no registration_endpoint');
  process.exit(1);
}
const res = await fetch(md.registration_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    client_name: 'Chromium e2e',
    redirect_uris: [callback],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }),
});
const reg = await res.json();
if (res.status !== 201) {
  console.error(`browser-spec: registration answered ${res.status} ${reg.error ?? ''}`);
  process.exit(1);
}
const authorize = new URL(md.authorization_endpoint);
const params = {
  response_type: 'code',
  client_id: reg.client_id,
  redirect_uri: callback,
  code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'),
  code_challenge_method: 'S256',
  state: randomBytes(16).toString('base64url'),
};
if (process.env.SCOPE) params.scope = process.env.SCOPE;
if (process.env.RESOURCE) params.resource = process.env.RESOURCE;
authorize.search = new URLSearchParams(params).toString();
const unknown = new URL(md.authorization_endpoint);
unknown.search = new URLSearchParams({ response_type: 'code', client_id: 'no-such-client' }).toString();

process.stdout.write(
  JSON.stringify(
    {
      callbackPrefix: callback,
      pages: [
        {
          name: 'login',
          url: authorize.toString(),
          actions: [
            { fill: 'input[type=email], input[name=email], input[name=username]', value: '$MCP_USER' },
            { fill: 'input[type=password]', value: '$MCP_PASSWORD' },
            { click: 'form:has(input[type=password]) [type=submit]' },
          ],
        },
        { name: 'consent', actions: [{ click: '[name=decision][value=approve]' }] },
        { name: 'callback', expect: { headers: {}, tabOrder: false, text: 'callback reached' } },
        { name: 'error-unknown-client', url: unknown.toString(), expect: { status: 400, tabOrder: false } },
      ],
    },
    null,
    2,
  ) + '\n',
);
