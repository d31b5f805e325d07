#!/usr/bin/env node
// Visits pages in real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core), saves a full-page screenshot of each, records the response's
// security headers, checks them against expectations, and checks keyboard
// navigation: pressing Tab from the top of the page must reach the form's
// fields and its submit button, in document order.
//
// Usage:
//   node chromium-pages.mjs URL...                       # default expectations
//   node chromium-pages.mjs --spec pages.json            # pages + expectations
//   PAGES="url1,url2" node chromium-pages.mjs
//
// Options / environment:
//   --spec FILE | PAGES_SPEC     JSON spec (below)
//   --artifacts DIR | ARTIFACTS_DIR   where screenshots and results.json go
//                                (default ../../test-artifacts/chromium)
//   --chromium PATH | CHROMIUM   browser binary (default /usr/bin/chromium)
//   CA_CERTS                     comma-separated PEM files (e.g. Caddy's local CA
//                                root.crt and intermediate.crt); certificate errors
//                                are ignored only for chains containing one of
//                                these keys (--ignore-certificate-errors-spki-list), after
//                                each https origin's presented chain was verified against
//                                them here
//
// Spec:
// {
//   "defaults": { "expect": { ... } },          // merged into every page's expect
//   "callbackPrefix": "http://127.0.0.1:8976/callback",  // loopback redirect URI: a local listener answers it
//   "pages": [
//     { "name": "login",                        // file name of the screenshot
//       "url": "https://localhost:8443/login?...",  // omit to stay where the last actions led
//       "expect": {
//         "status": 200,
//         "headers": { "content-security-policy": "frame-ancestors 'none'",   // substring
//                      "x-content-type-options": "nosniff",
//                      "referrer-policy": true },                              // present
//         "absentHeaders": ["server-timing"],
//         "tabOrder": "auto" | ["input[name=email]", "input[name=password]", "button[type=submit]"] | false,
//         "text": "Sign in"                     // page text must contain it
//       },
//       "actions": [ {"fill": "input[type=email]", "value": "$MCP_USER"},
//                    {"fill": "input[type=password]", "value": "$MCP_PASSWORD"},
//                    {"click": "button[type=submit]"} ] }   // run after the checks; a click
//                                                           // waits for a navigation unless "navigates": false
//   ]
// }
// Values "$NAME" in actions come from the environment.
//
// Default expectations (when a page has none): status 200, CSP with
// frame-ancestors 'none', X-Content-Type-Options nosniff, a Referrer-Policy,
// and tabOrder "auto".
//
// Prints a JSON summary; exits 1 if any check failed.

import { X509Certificate, createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    spec: { type: 'string' },
    artifacts: { type: 'string' },
    chromium: { type: 'string' },
  },
});

const SECURITY_HEADERS = [
  'content-security-policy',
  'x-frame-options',
  'x-content-type-options',
  'referrer-policy',
  'strict-transport-security',
  'cache-control',
  'permissions-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'cross-origin-embedder-policy',
  'set-cookie',
];

const DEFAULT_EXPECT = {
  status: 200,
  headers: {
    'content-security-policy': "frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    'referrer-policy': true,
  },
  tabOrder: 'auto',
};

function loadSpec() {
  const file = opts.spec ?? process.env.PAGES_SPEC;
  if (file) return JSON.parse(readFileSync(file, 'utf8'));
  const urls = positionals.length ? positionals : (process.env.PAGES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (!urls.length) throw new Error('chromium-pages: no pages: give URLs, PAGES, or --spec');
  return { pages: urls.map((url, i) => ({ name: `page-${i + 1}`, url })) };
}

/** SHA-256 of each certificate's SubjectPublicKeyInfo, base64: Chromium's SPKI pin format. */
function spkiHashes(files) {
  const out = [];
  for (const f of files) {
    const pem = readFileSync(f, 'utf8');
    for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      const cert = new X509Certificate(block);
      const der = cert.publicKey.export({ type: 'spki', format: 'der' });
      out.push(createHash('sha256').update(der).digest('base64'));
    }
  }
  return out;
}

/**
 * Answers the client's loopback redirect URI the way a native client's
 * listener would (Playwright does not route requests reached by a redirect).
 * The query (code, state) is never recorded.
 */
function listenForCallback(prefix) {
  const u = new URL(prefix);
  if (u.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname) || !u.port) {
    throw new Error(`chromium-pages: callbackPrefix must be a loopback http URL with a port, got ${prefix}`);
  }
  const server = http.createServer((req, res) => {
    const ok = new URL(req.url, prefix).pathname === u.pathname;
    res.writeHead(ok ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(ok ? '<!doctype html><title>callback</title><p>callback reached</p>' : 'not found');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(u.port), u.hostname.replace(/^\[|\]$/g, ''), () => resolve(server));
  });
}

/** Connects to an https origin, verifies its chain against the CA files, and returns the presented chain's SPKI pins. */
function presentedChainPins(origin, caFiles) {
  const u = new URL(origin);
  const ca = caFiles.map((f) => readFileSync(f, 'utf8'));
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: u.hostname, port: Number(u.port || 443), servername: net.isIP(u.hostname) ? undefined : u.hostname, ca }, () => {
      const pins = [];
      let c = sock.getPeerCertificate(true);
      const seen = new Set();
      while (c?.raw && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        const der = new X509Certificate(c.raw).publicKey.export({ type: 'spki', format: 'der' });
        pins.push(createHash('sha256').update(der).digest('base64'));
        c = c.issuerCertificate;
      }
      sock.end();
      resolve(pins);
    });
    sock.setTimeout(10000, () => sock.destroy(new Error(`chromium-pages: TLS to ${origin} timed out`)));
    sock.on('error', (err) => reject(new Error(`chromium-pages: ${origin} is not trusted by CA_CERTS: ${err.message}`)));
  });
}

function envValue(v) {
  if (typeof v === 'string' && v.startsWith('$')) {
    const val = process.env[v.slice(1)];
    if (val === undefined) throw new Error(`chromium-pages: environment variable ${v.slice(1)} is not set`);
    return val;
  }
  return v;
}

function safeName(s) {
  return String(s).replace(/[^a-z0-9._-]+/gi, '_').slice(0, 80) || 'page';
}

/**
 * In the page: the focusable controls of the form under test, in document
 * order (what Tab must visit), and where focus goes on each Tab press.
 */
async function checkTabOrder(page, tabOrder) {
  const expected = await page.evaluate((selectors) => {
    const visible = (el) => {
      const s = getComputedStyle(el);
      const r = el.getBoundingClientRect();
      return s.visibility !== 'hidden' && s.display !== 'none' && r.width > 0 && r.height > 0;
    };
    const describe = (el) => ({
      tag: el.tagName.toLowerCase(),
      type: el.getAttribute('type') ?? '',
      name: el.getAttribute('name') ?? '',
      id: el.id,
      text: (el.innerText || el.value || '').trim().slice(0, 40),
    });
    let els;
    if (Array.isArray(selectors)) {
      els = selectors.map((sel) => {
        const el = document.querySelector(sel);
        if (!el) throw new Error(`no element matches ${sel}`);
        return el;
      });
    } else {
      const forms = [...document.forms];
      const form =
        forms.find((f) => f.querySelector('input[type=password]')) ??
        forms.find((f) => f.querySelector('[name=decision]')) ??
        forms[0];
      if (!form) return { error: 'no form on the page' };
      els = [...form.querySelectorAll('input, select, textarea, button')].filter(
        (el) => el.type !== 'hidden' && !el.disabled && el.tabIndex >= 0 && visible(el),
      );
    }
    window.__e2eTargets = els;
    const submit = els.findIndex((el) => (el.tagName === 'BUTTON' && (el.type || 'submit') === 'submit') || (el.tagName === 'INPUT' && el.type === 'submit'));
    return { targets: els.map(describe), submitIndex: submit };
  }, tabOrder);
  if (expected.error) return { ok: false, error: expected.error };

  // Start where a keyboard user arriving on the page is: on the autofocused
  // control if the page focuses one, else at the top of the document (a
  // temporary focus anchor as the body's first child resets Chromium's
  // sequential-navigation starting point; it is removed after the first Tab).
  const initial = await page.evaluate(() => {
    const idx = (window.__e2eTargets ?? []).indexOf(document.activeElement);
    if (idx >= 0) return idx;
    document.activeElement?.blur?.();
    const anchor = document.createElement('span');
    anchor.tabIndex = 0;
    anchor.id = '__e2e_focus_anchor';
    document.body.prepend(anchor);
    anchor.focus();
    window.scrollTo(0, 0);
    return -1;
  });
  const visits = [];
  let next = 0;
  if (initial >= 0) {
    visits.push(`#${initial} (autofocus)`);
    next = initial + 1;
  }
  const maxPresses = expected.targets.length + 30;
  let focusVisible = true;
  for (let i = 0; i < maxPresses && next < expected.targets.length; i++) {
    await page.keyboard.press('Tab');
    if (i === 0) await page.evaluate(() => document.getElementById('__e2e_focus_anchor')?.remove());
    const at = await page.evaluate(() => {
      const el = document.activeElement;
      const idx = (window.__e2eTargets ?? []).indexOf(el);
      const s = el ? getComputedStyle(el) : null;
      const ring = s ? (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none' : false;
      return { idx, tag: el?.tagName?.toLowerCase() ?? '', name: el?.getAttribute?.('name') ?? '', ring };
    });
    visits.push(at.idx >= 0 ? `#${at.idx}` : `${at.tag}${at.name ? `[name=${at.name}]` : ''}`);
    if (at.idx === next) {
      if (!at.ring) focusVisible = false;
      next++;
    } else if (at.idx > next) {
      return { ok: false, error: `Tab skipped ${JSON.stringify(expected.targets[next])} (reached #${at.idx} first)`, expected: expected.targets, visits };
    }
  }
  if (next < expected.targets.length) {
    return { ok: false, error: `Tab never reached ${JSON.stringify(expected.targets[next])}`, expected: expected.targets, visits };
  }
  if (expected.submitIndex < 0) {
    return { ok: false, error: 'the form has no submit button reachable by keyboard', expected: expected.targets, visits };
  }
  return { ok: true, expected: expected.targets, visits, focus_visible: focusVisible, ...(initial >= 0 ? { autofocus: initial } : {}) };
}

function checkHeaders(headers, expect) {
  const problems = [];
  for (const [name, want] of Object.entries(expect.headers ?? {})) {
    const got = headers[name.toLowerCase()];
    if (want === false) {
      if (got !== undefined) problems.push(`header ${name} must be absent`);
    } else if (got === undefined) {
      problems.push(`header ${name} missing`);
    } else if (typeof want === 'string' && !got.toLowerCase().includes(want.toLowerCase())) {
      problems.push(`header ${name}: "${got}" lacks "${want}"`);
    }
  }
  for (const name of expect.absentHeaders ?? []) {
    if (headers[name.toLowerCase()] !== undefined) problems.push(`header ${name} must be absent`);
  }
  return problems;
}

async function main() {
  const spec = loadSpec();
  const artifacts = path.resolve(opts.artifacts ?? process.env.ARTIFACTS_DIR ?? path.join(here, '../../test-artifacts/chromium'));
  mkdirSync(artifacts, { recursive: true });
  const executablePath = opts.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  const caFiles = (process.env.CA_CERTS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (caFiles.length) {
    // Chromium matches the pins against the chain the server presents (leaf
    // and intermediates; Caddy does not send its root), so each https origin's
    // chain is first verified here against CA_CERTS and its keys are pinned.
    const pins = new Set(spkiHashes(caFiles));
    const origins = new Set(spec.pages.filter((p) => p.url?.startsWith('https://')).map((p) => new URL(p.url).origin));
    for (const o of origins) for (const h of await presentedChainPins(o, caFiles)) pins.add(h);
    args.push(`--ignore-certificate-errors-spki-list=${[...pins].join(',')}`);
  }

  const userDataDir = mkdtempSync(path.join(tmpdir(), 'e2e-chromium-'));
  const summary = { ok: false, browser: executablePath, artifacts, pages: [] };
  let context;
  let callbackServer;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args,
      viewport: { width: 1280, height: 900 },
    });
    summary.browser_version = context.browser()?.version() ?? null;
    if (spec.callbackPrefix) callbackServer = await listenForCallback(spec.callbackPrefix);
    const page = context.pages()[0] ?? (await context.newPage());
    let lastMain = null;
    page.on('response', (res) => {
      // The final response of a main-frame navigation (redirects are followed through).
      const st = res.status();
      if (res.request().isNavigationRequest() && res.request().frame() === page.mainFrame() && (st < 300 || st >= 400)) lastMain = res;
    });
    const consoleErrors = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(msg.text().slice(0, 200));
    });

    for (const [i, p] of spec.pages.entries()) {
      const name = safeName(p.name ?? `page-${i + 1}`);
      const expect = { ...DEFAULT_EXPECT, ...(spec.defaults?.expect ?? {}), ...(p.expect ?? {}) };
      const result = { name, ok: true, problems: [] };
      summary.pages.push(result);
      try {
        consoleErrors.length = 0;
        if (p.url) {
          lastMain = null;
          await page.goto(p.url, { waitUntil: 'load' });
        } else {
          await page.waitForLoadState('load');
        }
        const u = new URL(page.url());
        result.url = u.origin + u.pathname; // the query may hold state or codes: not recorded
        result.title = await page.title();
        const res = lastMain;
        const headers = res ? await res.allHeaders() : {};
        result.status = res?.status() ?? null;
        result.security_headers = Object.fromEntries(
          SECURITY_HEADERS.filter((h) => headers[h] !== undefined).map((h) => [h, h === 'set-cookie' ? headers[h].split('\n').map((c) => c.replace(/=[^;]*/, '=…')).join(' | ') : headers[h]]),
        );
        const shot = path.join(artifacts, `${String(i + 1).padStart(2, '0')}-${name}.png`);
        await page.screenshot({ path: shot, fullPage: true });
        result.screenshot = shot;

        if (expect.status !== undefined && result.status !== expect.status) {
          result.problems.push(`status ${result.status}, want ${expect.status}`);
        }
        result.problems.push(...checkHeaders(headers, expect));
        if (expect.text) {
          const body = await page.innerText('body');
          if (!body.includes(expect.text)) result.problems.push(`page text lacks "${expect.text}"`);
        }
        if (expect.tabOrder) {
          result.keyboard = await checkTabOrder(page, expect.tabOrder);
          if (!result.keyboard.ok) result.problems.push(`keyboard: ${result.keyboard.error}`);
        }
        if (consoleErrors.length) result.console_errors = [...consoleErrors];

        for (const a of p.actions ?? []) {
          if (a.fill) await page.fill(a.fill, envValue(a.value ?? ''));
          else if (a.check) await page.check(a.check);
          else if (a.press) await page.keyboard.press(a.press);
          else if (a.click) {
            // A click navigates unless the action says "navigates": false.
            if (a.navigates === false) await page.click(a.click);
            else {
              lastMain = null;
              const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: 15000 });
              await page.click(a.click);
              await navigated;
              await page.waitForLoadState('load');
            }
          } else if (a.waitForURL) await page.waitForURL((url) => url.href.includes(a.waitForURL));
          else throw new Error(`unknown action ${JSON.stringify(a)}`);
        }
      } catch (err) {
        result.problems.push(String(err?.message ?? err).split('\n')[0]);
      }
      result.ok = result.problems.length === 0;
    }
    summary.ok = summary.pages.length > 0 && summary.pages.every((r) => r.ok);
  } catch (err) {
    summary.error = String(err?.message ?? err);
  } finally {
    await context?.close().catch(() => {});
    callbackServer?.closeAllConnections?.();
    callbackServer?.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
  const out = JSON.stringify(summary, null, 2);
  writeFileSync(path.join(artifacts, 'results.json'), out + '\n');
  process.stdout.write(out + '\n');
  process.exit(summary.ok ? 0 : 1);
}

await main();
