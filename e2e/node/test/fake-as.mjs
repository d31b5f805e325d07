// A deliberately small stand-in for caddy-mcpauth, used only to test the e2e
// harness itself (ts-client.mjs, login-driver.mjs, conformance.mjs,
// chromium-pages.mjs) before and independently of the real product. It is NOT
// a reference implementation: the real end-to-end tests run against a Caddy
// binary built from this repository.
//
// One origin serves: PRM, AS metadata, DCR, /authorize with a hosted login
// (cookie session + CSRF) and a consent page, /token (PKCE, resource, rotating
// refresh tokens with reuse refused), and /mcp guarded by bearer tokens and
// proxied to an upstream MCP server with X-Mcp-Subject set and Authorization
// stripped.

import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

const rnd = () => randomBytes(24).toString('base64url');
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http://127.0.0.1:*; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function cookies(req) {
  return Object.fromEntries((req.headers.cookie ?? '').split(';').filter(Boolean).map((c) => c.trim().split('=').map(decodeURIComponent)));
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function readJSON(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return JSON.parse(body || '{}');
}

function isLoopbackRedirect(registered, given) {
  if (registered === given) return true;
  try {
    const a = new URL(registered);
    const b = new URL(given);
    return a.hostname === '127.0.0.1' && b.hostname === '127.0.0.1' && a.protocol === b.protocol && a.pathname === b.pathname;
  } catch {
    return false;
  }
}

/**
 * Starts the fake on 127.0.0.1 (random port). upstream is the MCP server's
 * base URL (e.g. http://127.0.0.1:9000). users maps email -> password.
 * tls = { key, cert, ca } serves https and trusts ca when fetching CIMD documents.
 * Returns { url, issuer, resource, close, stats }.
 */
export async function startFakeAS({ upstream, users = { 'alice@example.com': 'correct horse battery staple' }, tls }) {
  const clients = new Map(); // client_id -> metadata
  const sessions = new Map(); // sid -> email
  const codes = new Map(); // code -> {client_id, redirect_uri, challenge, resource, sub}
  const access = new Map(); // token -> sub
  const refresh = new Map(); // token -> {sub, client_id, used}
  const stats = { upstreamAuthHeaders: 0 };
  let base;

  // CIMD: a client_id that is an https URL names its metadata document.
  const fetchCIMD = (clientId) =>
    new Promise((resolve) => {
      const req = https.get(clientId, { ca: tls?.ca, timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          try {
            const md = JSON.parse(body);
            resolve(res.statusCode === 200 && md.client_id === clientId && Array.isArray(md.redirect_uris) ? md : null);
          } catch {
            resolve(null);
          }
        });
      });
      req.on('error', () => resolve(null));
      req.on('timeout', () => req.destroy());
    });

  const handler = async (req, res) => {
    const u = new URL(req.url, base);
    const json = (status, obj, extra = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
      res.end(JSON.stringify(obj));
    };
    const page = (status, title, body, extra = {}) => {
      res.writeHead(status, { ...PAGE_HEADERS, ...extra });
      res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><main><h1>${esc(title)}</h1>${body}</main></body></html>`);
    };
    try {
      if (u.pathname === '/.well-known/oauth-protected-resource/mcp' || u.pathname === '/.well-known/oauth-protected-resource') {
        return json(200, { resource: `${base}/mcp`, authorization_servers: [base], scopes_supported: ['todo'], bearer_methods_supported: ['header'] });
      }
      if (u.pathname === '/.well-known/oauth-authorization-server') {
        return json(200, {
          issuer: base,
          authorization_endpoint: `${base}/authorize`,
          token_endpoint: `${base}/token`,
          registration_endpoint: `${base}/register`,
          response_types_supported: ['code'],
          grant_types_supported: ['authorization_code', 'refresh_token'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['none'],
          scopes_supported: ['todo'],
          client_id_metadata_document_supported: true,
          authorization_response_iss_parameter_supported: true,
        });
      }
      if (u.pathname === '/register' && req.method === 'POST') {
        const md = await readJSON(req);
        if (!Array.isArray(md.redirect_uris) || md.redirect_uris.length === 0) return json(400, { error: 'invalid_redirect_uri' });
        const client_id = rnd();
        clients.set(client_id, md);
        return json(201, { ...md, client_id, client_id_issued_at: Math.floor(Date.now() / 1000), token_endpoint_auth_method: 'none' });
      }
      if (u.pathname === '/login') {
        const c = cookies(req);
        if (req.method === 'GET') {
          const csrf = rnd();
          return page(200, 'Sign in',
            `<form method="post" action="/login"><input type="hidden" name="csrf" value="${esc(csrf)}"><input type="hidden" name="return" value="${esc(u.searchParams.get('return') ?? '/')}">` +
            `<p><label for="email">Email</label> <input id="email" type="email" name="email" autocomplete="username" required autofocus></p>` +
            `<p><label for="password">Password</label> <input id="password" type="password" name="password" autocomplete="current-password" required></p>` +
            `<p><button type="submit">Sign in</button></p></form>`,
            { 'set-cookie': `csrf=${csrf}; HttpOnly; SameSite=Lax; Path=/` });
        }
        const f = await readForm(req);
        if (!c.csrf || f.get('csrf') !== c.csrf) return page(403, 'Forbidden', '<p>CSRF check failed.</p>');
        const email = f.get('email');
        if (!users[email] || users[email] !== f.get('password')) {
          return page(200, 'Sign in', `<p role="alert">Wrong email or password.</p><form method="post" action="/login"><input type="hidden" name="csrf" value="${esc(c.csrf)}"><input type="hidden" name="return" value="${esc(f.get('return'))}"><input type="email" name="email"><input type="password" name="password"><button type="submit">Sign in</button></form>`);
        }
        const ret = f.get('return') ?? '/';
        if (!ret.startsWith('/') || ret.startsWith('//')) return page(400, 'Bad request', '<p>Bad return path.</p>');
        const sid = rnd();
        sessions.set(sid, email);
        res.writeHead(303, { location: ret, 'set-cookie': `sid=${sid}; HttpOnly; SameSite=Lax; Path=/` });
        return res.end();
      }
      if (u.pathname === '/authorize') {
        const q = u.searchParams;
        let client = clients.get(q.get('client_id'));
        if (!client && (q.get('client_id') ?? '').startsWith('https://')) {
          client = await fetchCIMD(q.get('client_id'));
          if (client) clients.set(q.get('client_id'), client);
        }
        if (!client) return page(400, 'Unknown client', '<p>The application is not registered.</p>');
        const redirect = q.get('redirect_uri');
        if (!client.redirect_uris.some((r) => isLoopbackRedirect(r, redirect))) return page(400, 'Bad redirect', '<p>redirect_uri is not registered.</p>');
        const back = (params) => {
          const to = new URL(redirect);
          for (const [k, v] of Object.entries(params)) to.searchParams.set(k, v);
          if (q.has('state')) to.searchParams.set('state', q.get('state'));
          to.searchParams.set('iss', base);
          res.writeHead(302, { location: to.toString() });
          res.end();
        };
        if (q.get('response_type') !== 'code') return back({ error: 'unsupported_response_type' });
        if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) return back({ error: 'invalid_request', error_description: 'PKCE S256 required' });
        const c = cookies(req);
        const sub = sessions.get(c.sid);
        if (!sub) {
          res.writeHead(303, { location: `/login?return=${encodeURIComponent(u.pathname + u.search)}` });
          return res.end();
        }
        if (req.method === 'GET') {
          const csrf = rnd();
          return page(200, 'Allow access?',
            `<p>${esc(client.client_name ?? 'An application')} wants to use your todo list.</p>` +
            `<form method="post" action="${esc(u.pathname + u.search)}"><input type="hidden" name="csrf" value="${esc(csrf)}">` +
            `<button type="submit" name="decision" value="deny">Deny</button> <button type="submit" name="decision" value="approve">Allow</button></form>`,
            { 'set-cookie': `ccsrf=${csrf}; HttpOnly; SameSite=Lax; Path=/` });
        }
        const f = await readForm(req);
        if (!c.ccsrf || f.get('csrf') !== c.ccsrf) return page(403, 'Forbidden', '<p>CSRF check failed.</p>');
        if (f.get('decision') !== 'approve') return back({ error: 'access_denied' });
        const code = rnd();
        codes.set(code, { client_id: q.get('client_id'), redirect_uri: redirect, challenge: q.get('code_challenge'), resource: q.get('resource'), sub });
        return back({ code });
      }
      if (u.pathname === '/token' && req.method === 'POST') {
        const f = await readForm(req);
        const issue = (sub, client_id, family = rnd()) => {
          const at = rnd();
          const rt = rnd();
          access.set(at, sub);
          refresh.set(rt, { sub, client_id, used: false, family });
          return json(200, { access_token: at, token_type: 'Bearer', expires_in: 3600, refresh_token: rt, scope: 'todo' });
        };
        if (f.get('grant_type') === 'authorization_code') {
          const c = codes.get(f.get('code'));
          codes.delete(f.get('code'));
          if (!c || c.client_id !== f.get('client_id') || c.redirect_uri !== f.get('redirect_uri')) return json(400, { error: 'invalid_grant' });
          const verifier = f.get('code_verifier') ?? '';
          if (createHash('sha256').update(verifier).digest('base64url') !== c.challenge) return json(400, { error: 'invalid_grant', error_description: 'PKCE' });
          if (c.resource && f.get('resource') && c.resource !== f.get('resource')) return json(400, { error: 'invalid_target' });
          return issue(c.sub, c.client_id);
        }
        if (f.get('grant_type') === 'refresh_token') {
          const r = refresh.get(f.get('refresh_token'));
          if (!r || r.revoked || r.client_id !== f.get('client_id')) return json(400, { error: 'invalid_grant' });
          if (r.used) {
            // Reuse: revoke the whole family.
            for (const t of refresh.values()) if (t.family === r.family) t.revoked = true;
            return json(400, { error: 'invalid_grant' });
          }
          r.used = true;
          return issue(r.sub, r.client_id, r.family);
        }
        return json(400, { error: 'unsupported_grant_type' });
      }
      if (u.pathname === '/mcp' || u.pathname.startsWith('/mcp/')) {
        const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
        const sub = m && access.get(m[1]);
        if (!sub) {
          const err = m ? ', error="invalid_token"' : '';
          res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="todo"${err}` });
          return res.end();
        }
        const headers = { ...req.headers };
        delete headers.authorization;
        delete headers['x-mcp-subject'];
        headers['x-mcp-subject'] = sub;
        headers.host = new URL(upstream).host;
        const up = http.request(new URL(u.pathname + u.search, upstream), { method: req.method, headers }, (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
        });
        up.on('error', () => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        req.pipe(up);
        return;
      }
      page(404, 'Not found', '<p>Nothing here.</p>');
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'server_error' }));
    }
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;
  return {
    url: base,
    issuer: base,
    resource: `${base}/mcp`,
    stats,
    close: () => new Promise((r) => {
      server.closeAllConnections?.();
      server.close(() => r());
    }),
  };
}
