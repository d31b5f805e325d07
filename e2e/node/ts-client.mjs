#!/usr/bin/env node
// End-to-end client: the official TypeScript SDK (@modelcontextprotocol/sdk)
// against an MCP server protected by caddy-mcpauth.
//
// Flow: connect -> 401 -> discovery (PRM, AS metadata) -> registration (DCR)
// or CIMD (clientMetadataUrl) -> authorization URL (PKCE, resource, state) ->
// hosted login completed by login-driver.mjs over HTTP -> redirect with
// code+state+iss -> finishAuth (token exchange) -> tools/list -> tool calls
// (with streamed progress) -> forced refresh through the SDK's own 401 path ->
// another call -> a second refresh -> the first, rotated-out refresh token must
// be refused (invalid_grant) and that reuse must revoke the family.
//
// Usage:
//   node ts-client.mjs [--mode dcr|cimd|none] [--summary FILE]
//   node ts-client.mjs --print-cimd        # the CIMD document to serve at CIMD_URL
//
// Environment:
//   MCP_URL            MCP endpoint, e.g. https://localhost:8443/mcp (required)
//   MCP_MODE           dcr (default), cimd, or none (server without auth: no 401 expected)
//   CIMD_URL           https URL of the client metadata document (cimd mode)
//   MCP_USER           account for the hosted login (email or user name)
//   MCP_PASSWORD       its password
//   REDIRECT_URL       redirect URI to register (default http://127.0.0.1:8976/callback);
//                      nothing listens there: the login driver stops at the redirect
//   EXPECT_SUBJECT     "*" = whoami must report a non-empty subject; any other
//                      value = it must equal that; unset = only reported
//   NODE_EXTRA_CA_CERTS  PEM file of the CA to trust (Caddy's internal CA root,
//                      e.g. $XDG_DATA_HOME/caddy/pki/authorities/local/root.crt);
//                      Node reads it at start-up, so set it in the environment.
//
// Prints one JSON summary on stdout (no token, code or password in it) and
// exits 0 when every step passed, 1 otherwise.

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { completeHostedLogin } from './login-driver.mjs';

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string' },
    summary: { type: 'string' },
    'print-cimd': { type: 'boolean', default: false },
  },
});

const MODE = (args.mode ?? process.env.MCP_MODE ?? 'dcr').toLowerCase();
const MCP_URL = process.env.MCP_URL;
const CIMD_URL = process.env.CIMD_URL;
const REDIRECT_URL = process.env.REDIRECT_URL ?? 'http://127.0.0.1:8976/callback';
const CLIENT_NAME = 'caddy-mcpauth e2e (TypeScript SDK)';

/** The client metadata: sent to /register (DCR) and served at CIMD_URL (CIMD). */
export function clientMetadata() {
  const md = {
    client_name: CLIENT_NAME,
    redirect_uris: [REDIRECT_URL],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
  if (MODE === 'cimd' && CIMD_URL) md.client_id = CIMD_URL;
  return md;
}

if (args['print-cimd']) {
  if (!CIMD_URL) {
    console.error('ts-client: --print-cimd needs CIMD_URL');
    process.exit(2);
  }
  process.stdout.write(JSON.stringify({ ...clientMetadata(), client_id: CIMD_URL }, null, 2) + '\n');
  process.exit(0);
}

/** An in-memory OAuthClientProvider that records what the SDK does with it. */
class E2EProvider {
  constructor() {
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this.authorizationUrl = undefined;
    this.state_ = undefined;
    this.redirects = 0;
    this.tokenSaves = 0;
    this.registrations = 0;
  }
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    const md = clientMetadata();
    delete md.client_id;
    return md;
  }
  get clientMetadataUrl() {
    return MODE === 'cimd' ? CIMD_URL : undefined;
  }
  state() {
    this.state_ = randomBytes(16).toString('base64url');
    return this.state_;
  }
  clientInformation() {
    return this._client;
  }
  saveClientInformation(info) {
    // Stored unchanged, as the SDK asks (it stamps the issuer).
    this._client = info;
    this.registrations++;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.tokenSaves++;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = new URL(url);
    this.redirects++;
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    if (!this._verifier) throw new Error('ts-client: no code verifier saved');
    return this._verifier;
  }
  saveDiscoveryState(s) {
    this._discovery = s;
  }
  discoveryState() {
    return this._discovery;
  }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }
  /** Replaces the access token by garbage, keeping the refresh token, to force the SDK's refresh path. */
  spoilAccessToken() {
    if (!this._tokens?.refresh_token) throw new Error('ts-client: no refresh token was issued');
    this._tokens = { ...this._tokens, access_token: randomBytes(32).toString('base64url') };
  }
}

// ---- HTTP trace (no secrets: paths, statuses, parameter names) ----
const trace = [];
function bodyKeys(body) {
  if (body instanceof URLSearchParams) return [...body.keys()];
  if (typeof body === 'string' && !body.trimStart().startsWith('{')) return [...new URLSearchParams(body).keys()];
  return undefined;
}
async function tracingFetch(input, init = {}) {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  const entry = { method, url: url.origin + url.pathname };
  const keys = bodyKeys(init.body);
  if (keys) {
    entry.form = keys;
    const p = new URLSearchParams(init.body.toString());
    if (p.has('grant_type')) entry.grant_type = p.get('grant_type');
  }
  if (method === 'POST' && url.pathname.endsWith('/register') && typeof init.body === 'string') {
    try {
      entry.registered_redirect_uris = JSON.parse(init.body).redirect_uris;
    } catch {}
  }
  trace.push(entry);
  const res = await fetch(input, init);
  entry.status = res.status;
  const www = res.headers.get('www-authenticate');
  if (www) entry.www_authenticate = www;
  return res;
}

// ---- steps ----
const summary = { ok: false, sdk: '@modelcontextprotocol/sdk', mode: MODE, mcp_url: MCP_URL, steps: [] };
async function step(name, fn) {
  const started = Date.now();
  try {
    const detail = await fn();
    summary.steps.push({ name, ok: true, ms: Date.now() - started, ...(detail !== undefined ? { detail } : {}) });
    return detail;
  } catch (err) {
    summary.steps.push({ name, ok: false, ms: Date.now() - started, error: String(err?.message ?? err) });
    throw err;
  }
}
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

function newTransport(provider) {
  return new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider, fetch: tracingFetch });
}
function newClient() {
  return new Client({ name: 'caddy-mcpauth-e2e', version: '1.0.0' });
}
function structured(res) {
  check(!res.isError, `tool error: ${JSON.stringify(res.content)}`);
  return res.structuredContent ?? JSON.parse(res.content?.[0]?.text ?? 'null');
}

async function main() {
  check(MCP_URL, 'MCP_URL is required');
  check(['dcr', 'cimd', 'none'].includes(MODE), `unknown mode ${MODE} (dcr, cimd or none)`);
  if (MODE === 'cimd') check(CIMD_URL && CIMD_URL.startsWith('https://'), 'cimd mode needs CIMD_URL (https)');

  const provider = new E2EProvider();
  let client = newClient();
  let transport = newTransport(provider);

  const firstConnect = await step('connect', async () => {
    try {
      await client.connect(transport);
      return { authorized: false };
    } catch (err) {
      if (err instanceof UnauthorizedError) return { authorized: true };
      throw err;
    }
  });

  if (MODE === 'none') {
    check(!firstConnect.authorized, 'mode none: the server asked for authorization');
  } else {
    check(firstConnect.authorized, 'the server did not answer 401: is the guard in front of it?');

    await step('challenge-and-discovery', () => {
      const first = trace.find((t) => t.method === 'POST' && t.status === 401);
      check(first, 'no 401 on the first MCP request');
      check(/^Bearer\b/i.test(first.www_authenticate ?? ''), `401 without a Bearer challenge: ${first.www_authenticate}`);
      check(/resource_metadata="[^"]+"/.test(first.www_authenticate), 'challenge lacks resource_metadata');
      const d = provider.discoveryState();
      check(d?.authorizationServerUrl, 'no authorization server discovered');
      check(d.authorizationServerMetadata?.issuer, 'no AS metadata');
      check(d.resourceMetadata?.resource, 'no protected resource metadata');
      summary.issuer = d.authorizationServerMetadata.issuer;
      summary.resource = d.resourceMetadata.resource;
      return {
        challenge: first.www_authenticate,
        issuer: summary.issuer,
        resource: summary.resource,
        cimd_supported: d.authorizationServerMetadata.client_id_metadata_document_supported === true,
        registration_endpoint: d.authorizationServerMetadata.registration_endpoint ?? null,
      };
    });

    await step(MODE === 'dcr' ? 'registration-dcr' : 'client-id-cimd', () => {
      const info = provider.clientInformation();
      check(info?.client_id, 'no client id');
      summary.client_id = info.client_id;
      const registered = trace.some((t) => t.method === 'POST' && /\/register$/.test(new URL(t.url).pathname));
      if (MODE === 'dcr') {
        check(registered, 'DCR mode: no registration request was made');
        check(info.client_id !== CIMD_URL, 'DCR mode: client id is a URL');
      } else {
        check(!registered, 'CIMD mode: the SDK fell back to DCR (is client_id_metadata_document_supported advertised?)');
        check(info.client_id === CIMD_URL, `CIMD mode: client id ${info.client_id} is not ${CIMD_URL}`);
      }
      return { client_id: info.client_id };
    });

    await step('authorization-request', () => {
      const u = provider.authorizationUrl;
      check(u, 'the SDK did not redirect to authorization');
      const p = u.searchParams;
      check(p.get('response_type') === 'code', 'response_type is not code');
      check(p.get('code_challenge_method') === 'S256', 'PKCE method is not S256');
      check((p.get('code_challenge') ?? '').length >= 43, 'no PKCE code_challenge');
      check(p.get('client_id') === summary.client_id, 'client_id mismatch');
      check(p.get('redirect_uri') === REDIRECT_URL, 'redirect_uri mismatch');
      check(p.get('state') === provider.state_, 'state mismatch');
      check(p.get('resource') === summary.resource, `resource ${p.get('resource')} is not ${summary.resource}`);
      return { endpoint: u.origin + u.pathname, params: [...p.keys()], scope: p.get('scope') };
    });

    let callbackUrl;
    await step('hosted-login', async () => {
      const r = await completeHostedLogin(provider.authorizationUrl, {
        redirectUri: REDIRECT_URL,
        user: process.env.MCP_USER,
        password: process.env.MCP_PASSWORD,
        fetch: tracingFetch,
      });
      callbackUrl = new URL(r.callbackUrl); // holds the code: kept out of the summary
      return { pages: r.pages, hops: r.trace.length };
    });

    let code;
    await step('authorization-response', () => {
      const p = callbackUrl.searchParams;
      check(!p.has('error'), `authorization error: ${p.get('error')} ${p.get('error_description') ?? ''}`);
      check(p.getAll('code').length === 1 && p.get('code'), 'no single code in the redirect');
      check(p.getAll('state').length === 1 && p.get('state') === provider.state_, 'state does not round-trip');
      check(p.getAll('iss').length === 1 && p.get('iss') === summary.issuer, `iss ${p.get('iss')} is not the issuer ${summary.issuer} (RFC 9207)`);
      code = p.get('code');
      return { code: 'received', state: 'matches', iss: 'matches' };
    });

    await step('token-exchange', async () => {
      await transport.finishAuth(code);
      const t = provider.tokens();
      check(t?.access_token, 'no access token');
      check(/^bearer$/i.test(t.token_type ?? ''), `token_type ${t.token_type}`);
      const req = trace.findLast((e) => e.grant_type === 'authorization_code');
      check(req?.status === 200, `token endpoint answered ${req?.status}`);
      check(req.form.includes('code_verifier'), 'token request without code_verifier');
      check(req.form.includes('resource'), 'token request without resource');
      return {
        token_type: t.token_type,
        expires_in: t.expires_in,
        scope: t.scope,
        refresh_token_issued: Boolean(t.refresh_token),
        access_token_is_jwt: t.access_token.split('.').length === 3,
      };
    });
    await transport.close().catch(() => {});
    client = newClient();
    transport = newTransport(provider);
    await step('connect-authorized', () => client.connect(transport));
  }

  const tools = await step('tools/list', async () => {
    const res = await client.listTools();
    const names = res.tools.map((t) => t.name);
    check(names.length > 0, 'no tools');
    return names;
  });

  if (tools.includes('whoami')) {
    await step('tools/call whoami', async () => {
      const out = structured(await client.callTool({ name: 'whoami', arguments: {} }));
      check(out.authorization_header_seen === false, 'the MCP server received an Authorization header (token passthrough)');
      const want = process.env.EXPECT_SUBJECT;
      if (want === '*') check(out.subject, 'no identity handed off to the MCP server');
      else if (want) check(out.subject === want, `subject ${out.subject} is not ${want}`);
      return { subject: out.subject, identity_headers: Object.keys(out.identity_headers ?? {}) };
    });
  }
  if (tools.includes('add_todo')) {
    await step('tools/call add_todo', async () => {
      const out = structured(await client.callTool({ name: 'add_todo', arguments: { title: `e2e ${MODE} ${Date.now()}` } }));
      check(out.todo?.id > 0, 'no todo id');
      return { id: out.todo.id };
    });
  }
  if (tools.includes('slow_count')) {
    await step('tools/call slow_count (progress)', async () => {
      const seen = [];
      const out = structured(
        await client.callTool({ name: 'slow_count', arguments: { n: 3, delay_ms: 20 } }, undefined, {
          onprogress: (p) => seen.push(p.progress),
        }),
      );
      check(out.count === 3, `count ${out.count}`);
      check(seen.length === 3, `got ${seen.length} progress notifications, want 3`);
      return { progress: seen };
    });
  }

  if (MODE !== 'none') {
    const before = { ...provider.tokens() };
    await step('refresh', async () => {
      provider.spoilAccessToken();
      const redirectsBefore = provider.redirects;
      const savesBefore = provider.tokenSaves;
      const res = await client.listTools(); // 401 -> SDK refreshes -> retries
      check(res.tools.length > 0, 'no tools after refresh');
      check(provider.redirects === redirectsBefore, 'the SDK started a new authorization instead of refreshing');
      check(provider.tokenSaves === savesBefore + 1, 'no new tokens saved');
      const req = trace.findLast((e) => e.grant_type === 'refresh_token');
      check(req?.status === 200, `refresh answered ${req?.status}`);
      const after = provider.tokens();
      check(after.access_token !== before.access_token, 'access token unchanged');
      return {
        refresh_token_rotated: Boolean(after.refresh_token) && after.refresh_token !== before.refresh_token,
        resource_sent: req.form.includes('resource'),
      };
    });
    await step('call after refresh', async () => {
      const name = tools.includes('list_todos') ? 'list_todos' : tools[0];
      const res = await client.callTool({ name, arguments: {} });
      check(!res.isError, `${name} failed after refresh`);
      return { tool: name };
    });
    // A rotated-out refresh token may keep a short "lost response" window
    // while its successor is unused; using the successor closes it. So
    // refresh once more (t1 -> t2), then present t0: it must be refused, and
    // (reuse detection) the whole family revoked, t2 included.
    const middle = { ...provider.tokens() };
    await step('second refresh', async () => {
      provider.spoilAccessToken();
      const res = await client.listTools();
      check(res.tools.length > 0, 'no tools after the second refresh');
      const req = trace.findLast((e) => e.grant_type === 'refresh_token');
      check(req?.status === 200, `second refresh answered ${req?.status}`);
      const after = provider.tokens();
      check(after.refresh_token && after.refresh_token !== middle.refresh_token, 'refresh token not rotated');
      return { refresh_token_rotated: true };
    });
    const presentRefresh = async (token) => {
      const md = provider.discoveryState().authorizationServerMetadata;
      const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token, client_id: summary.client_id, resource: summary.resource });
      const res = await tracingFetch(md.token_endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      const j = await res.json().catch(() => ({}));
      return { status: res.status, error: j.error };
    };
    await step('rotated-out refresh token refused', async () => {
      check(before.refresh_token, 'no first refresh token');
      const r = await presentRefresh(before.refresh_token);
      check(r.status === 400 && r.error === 'invalid_grant', `reused refresh token answered ${r.status} ${r.error}`);
      return r;
    });
    await step('reuse revoked the family', async () => {
      const r = await presentRefresh(provider.tokens().refresh_token);
      check(r.status === 400 && r.error === 'invalid_grant', `the current refresh token still works after reuse: ${r.status} ${r.error}`);
      return r;
    });
  }
  await client.close().catch(() => {});
}

let exitCode = 1;
try {
  await main();
  summary.ok = summary.steps.every((s) => s.ok);
  exitCode = summary.ok ? 0 : 1;
} catch (err) {
  summary.ok = false;
  summary.error = String(err?.message ?? err);
}
summary.http = trace;
const out = JSON.stringify(summary, null, 2);
process.stdout.write(out + '\n');
if (args.summary) writeFileSync(args.summary, out + '\n');
process.exit(exitCode);
