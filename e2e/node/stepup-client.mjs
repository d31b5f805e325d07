#!/usr/bin/env node
// Step-up with the official TypeScript SDK client through caddy-mcpauth
// (issue 16): a read-only token calls a write tool and gets 403
// insufficient_scope. The SDK (1.32.2) answers that by refreshing when it has a
// refresh token, which never widens a grant, and gives up; the app then drops
// the refresh token and reconnects, the SDK asks for the wider scope, the
// hosted consent page lists the tools the scopes unlock (the new ones marked),
// and the retried call succeeds. With MODE=tool_error (a guard with `step_up tool_error`) the same
// call is answered by a JSON-RPC tool error whose text links to the step-up
// page instead: the script opens it as the user, approves, forces a refresh
// and calls again.
//
// Environment: MCP_URL, MCP_USER, MCP_PASSWORD, CLIENT_ID (a pre-registered
// client whose redirect URIs allow http://127.0.0.1/callback on any port),
// MODE (challenge | tool_error), NODE_EXTRA_CA_CERTS (Caddy's internal CA).
// Prints a JSON summary (no token, code or password) and exits 0 on success.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { completeHostedLogin, CookieJar, decodeEntities } from './login-driver.mjs';

const MCP_URL = process.env.MCP_URL;
const CLIENT_ID = process.env.CLIENT_ID;
const MODE = process.env.MODE ?? 'challenge';
const REDIRECT_URL = 'http://127.0.0.1:5555/callback';
const summary = { mode: MODE, steps: [] };

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

class Provider {
  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return { client_name: 'stepup e2e', redirect_uris: [REDIRECT_URL], grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() {
    return { client_id: CLIENT_ID };
  }
  saveClientInformation() {}
  tokens() {
    return this._tokens;
  }
  saveTokens(t) {
    this._tokens = t;
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = new URL(url);
  }
  saveCodeVerifier(v) {
    this._verifier = v;
  }
  codeVerifier() {
    return this._verifier;
  }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
  }
}

const provider = new Provider();
const jar = new CookieJar();
const consentPages = [];
// Keeps the HTML of every consent page the login driver sees.
async function capturingFetch(url, init) {
  const res = await fetch(url, init);
  if (/html/i.test(res.headers.get('content-type') ?? '')) {
    const text = await res.clone().text();
    if (text.includes('name="decision"')) consentPages.push(text);
  }
  return res;
}

const trace = [];
async function tracingFetch(url, init) {
  const res = await fetch(url, init);
  const u = new URL(url);
  let grant;
  if (init?.body && typeof init.body !== 'string' && init.body instanceof URLSearchParams) grant = init.body.get('grant_type');
  else if (typeof init?.body === 'string' && u.pathname.endsWith('/token')) grant = new URLSearchParams(init.body).get('grant_type');
  trace.push({ method: init?.method ?? 'GET', path: u.pathname, status: res.status, grant });
  return res;
}

function newTransport() {
  return new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider, fetch: tracingFetch });
}

async function login(transport) {
  const r = await completeHostedLogin(provider.authorizationUrl, {
    redirectUri: REDIRECT_URL, user: process.env.MCP_USER, password: process.env.MCP_PASSWORD, fetch: capturingFetch, jar,
  });
  const code = new URL(r.callbackUrl).searchParams.get('code');
  check(code, 'no code at the redirect');
  await transport.finishAuth(code);
}

function text(res) {
  return (res.content ?? []).map((c) => c.text ?? '').join('');
}

async function main() {
  check(MCP_URL && CLIENT_ID, 'MCP_URL and CLIENT_ID are required');
  let transport = newTransport();
  let client = new Client({ name: 'stepup-e2e', version: '1.0.0' });
  try {
    await client.connect(transport);
    throw new Error('the server did not ask for authorization');
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) throw err;
  }
  check(provider.authorizationUrl.searchParams.get('scope')?.split(' ').includes('todo:read'), 'first authorization does not ask for todo:read');
  check(!provider.authorizationUrl.searchParams.get('scope')?.includes('todo:write'), 'first authorization already asks for todo:write');
  await login(transport);
  await transport.close().catch(() => {});
  transport = newTransport();
  client = new Client({ name: 'stepup-e2e', version: '1.0.0' });
  await client.connect(transport);
  summary.steps.push({ connected: true, scope: provider.tokens()?.scope });
  check(consentPages.length === 1 && consentPages[0].includes('<code>list_todos</code>') && !consentPages[0].includes('add_todo'),
    'first consent page does not list exactly the read tools');

  const list = await client.callTool({ name: 'list_todos', arguments: {} });
  check(!list.isError, `list_todos: ${text(list)}`);

  if (MODE === 'challenge') {
    // 403 insufficient_scope. The SDK (1.32.2) upscopes by refreshing when it
    // holds a refresh token, and a refresh never widens a grant by itself:
    // the SDK gives up with "403 after trying upscoping".
    let err1;
    try {
      await client.callTool({ name: 'add_todo', arguments: { title: 'ts step-up' } });
    } catch (err) {
      err1 = err;
    }
    check(err1 && /403 after trying upscoping/.test(String(err1.message)), `first attempt: ${err1?.message ?? 'succeeded'}`);
    check(trace.some((e) => e.path === '/mcp' && e.status === 403), 'no 403 from the guard');
    check(trace.some((e) => e.grant === 'refresh_token'), 'the SDK did not try a refresh');
    summary.steps.push({ sdk_refreshed_instead_of_asking: true });
    // The app drops the refresh token and reconnects: the SDK now asks the
    // user for the challenged scopes.
    provider.saveTokens({ ...provider.tokens(), refresh_token: undefined });
    await transport.close().catch(() => {});
    transport = newTransport();
    client = new Client({ name: 'stepup-e2e', version: '1.0.0' });
    await client.connect(transport);
    let stepped = false;
    try {
      await client.callTool({ name: 'add_todo', arguments: { title: 'ts step-up' } });
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err;
      stepped = true;
    }
    check(stepped, 'a write tool with a read token did not need step-up');
    const scope = provider.authorizationUrl.searchParams.get('scope') ?? '';
    check(scope.split(' ').includes('todo:write') && scope.split(' ').includes('todo:read'), `step-up asks for ${scope}`);
    await login(transport);
    check(consentPages.length === 2, `step-up showed ${consentPages.length - 1} consent pages`);
    check(consentPages[1].includes('<code>add_todo</code>') && consentPages[1].includes('<code>list_todos</code>'), 'step-up consent page does not list the write and read tools');
    const res = await client.callTool({ name: 'add_todo', arguments: { title: 'ts step-up' } });
    check(!res.isError, `add_todo after step-up: ${text(res)}`);
    summary.steps.push({ step_up: 'challenge', scope: provider.tokens()?.scope });
  } else {
    // The guard answers with a tool error; this client never sees a 403.
    const res = await client.callTool({ name: 'add_todo', arguments: { title: 'ts tool error' } });
    check(res.isError, 'a write tool with a read token was not refused');
    const m = text(res).match(/https:\/\/\S+\/consent\/step-up\?\S+/);
    check(m, `tool error without a step-up link: ${text(res)}`);
    // The user opens the link (signed in already in this browser) and approves.
    const page = await completeStepUp(m[0]);
    check(page.includes('Access updated'), 'step-up page did not finish');
    // The next refresh carries the wider scope: force one.
    const t = provider.tokens();
    provider.saveTokens({ ...t, access_token: 'expired.' + t.access_token });
    const again = await client.callTool({ name: 'add_todo', arguments: { title: 'ts after step-up' } });
    check(!again.isError, `add_todo after the step-up page and a refresh: ${text(again)}`);
    check((provider.tokens()?.scope ?? '').split(' ').includes('todo:write'), `scope after refresh: ${provider.tokens()?.scope}`);
    summary.steps.push({ step_up: 'tool_error', scope: provider.tokens()?.scope });
  }
  await transport.close().catch(() => {});
}

// completeStepUp opens the step-up link with the user's cookies and approves
// the consent form; it returns the final page's HTML.
async function completeStepUp(link) {
  let req = { method: 'GET', url: link, body: undefined };
  for (let i = 0; i < 6; i++) {
    const headers = { accept: 'text/html' };
    const cookie = jar.header(req.url);
    if (cookie) headers.cookie = cookie;
    if (req.body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = new URL(req.url).origin;
    }
    const res = await fetch(req.url, { method: req.method, headers, body: req.body, redirect: 'manual' });
    jar.store(req.url, res);
    if (res.status >= 300 && res.status < 400) {
      req = { method: 'GET', url: new URL(res.headers.get('location'), req.url).toString() };
      continue;
    }
    const html = await res.text();
    check(res.status === 200, `step-up page answered ${res.status}`);
    const form = html.match(/<form method="post" action="([^"]+)">([\s\S]*?)<\/form>/);
    if (!form || !html.includes('name="decision"')) return html;
    check(html.includes('asks for more access'), 'not the step-up consent page');
    const csrf = form[2].match(/name="csrf_token" value="([^"]+)"/);
    const action = decodeEntities(form[1]);
    req = { method: 'POST', url: new URL(action, req.url).toString(), body: new URLSearchParams({ csrf_token: csrf[1], decision: 'approve' }).toString() };
  }
  throw new Error('step-up page never finished');
}

main().then(
  () => {
    console.log(JSON.stringify({ ok: true, ...summary }));
  },
  (err) => {
    console.log(JSON.stringify({ ok: false, error: String(err?.message ?? err), ...summary, trace }));
    process.exit(1);
  },
);
