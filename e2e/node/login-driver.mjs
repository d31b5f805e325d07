// Completes the hosted login of an authorization server by plain HTTP, the way
// a user would with a browser: follow redirects with a cookie jar, fill the
// login form (email/username + password, hidden inputs such as the CSRF token
// kept), approve the consent form when one is shown, and stop at the redirect
// to the client's redirect_uri. Form and field names are discovered from the
// HTML, not hard-coded.
//
// Used by ts-client.mjs and conformance.mjs. Never logs passwords, codes or
// cookies: the trace it returns holds methods, URL paths and statuses only.

const USER_FIELDS = ['email', 'username', 'user', 'login', 'identifier', 'user_name'];
const MAX_STEPS = 25;

/** A minimal cookie jar: host-only cookies keyed by host, path and expiry ignored. */
export class CookieJar {
  #byHost = new Map();

  store(url, response) {
    const host = new URL(url).host;
    const setCookies = typeof response.headers.getSetCookie === 'function' ? response.headers.getSetCookie() : [];
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const jar = this.#byHost.get(host) ?? new Map();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a)) ||
        attrs.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split('=').slice(1).join('=')) < Date.now());
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
      this.#byHost.set(host, jar);
    }
  }

  header(url) {
    const jar = this.#byHost.get(new URL(url).host);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  names(url) {
    return [...(this.#byHost.get(new URL(url).host)?.keys() ?? [])];
  }
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', '#39': "'" };

export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

/** Parses the attributes of one start tag ("<input a=b c='d' e>") into a Map (names lower-cased). */
export function parseAttributes(tag) {
  const attrs = new Map();
  const body = tag.replace(/^<\s*[a-z0-9-]+/i, '').replace(/\/?>$/, '');
  const re = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = re.exec(body)) !== null) {
    const name = m[1].toLowerCase();
    if (attrs.has(name)) continue; // first one wins, as in browsers
    attrs.set(name, decodeEntities(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return attrs;
}

function stripTags(html) {
  return decodeEntities(html.replace(/<script[\s\S]*?<\/script>/gi, '').replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]*>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Extracts the forms of an HTML page: method, action (resolved against the
 * page URL), and controls in document order.
 */
export function parseForms(html, pageUrl) {
  const forms = [];
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form\s*>/gi;
  let fm;
  while ((fm = formRe.exec(html)) !== null) {
    const openTag = fm[0].slice(0, fm[0].indexOf('>') + 1);
    const attrs = parseAttributes(openTag);
    const inner = fm[1];
    const controls = [];
    const ctlRe = /<(input|button|textarea|select)\b[^>]*>/gi;
    let cm;
    while ((cm = ctlRe.exec(inner)) !== null) {
      const kind = cm[1].toLowerCase();
      const a = parseAttributes(cm[0]);
      const control = {
        kind,
        name: a.get('name') ?? '',
        type: (a.get('type') ?? (kind === 'button' ? 'submit' : kind === 'input' ? 'text' : kind)).toLowerCase(),
        value: a.get('value') ?? '',
        checked: a.has('checked'),
        disabled: a.has('disabled'),
        id: a.get('id') ?? '',
        label: '',
      };
      if (kind === 'button' || kind === 'textarea' || kind === 'select') {
        const close = new RegExp(`</${kind}\\s*>`, 'i');
        const rest = inner.slice(ctlRe.lastIndex);
        const end = rest.search(close);
        const content = end >= 0 ? rest.slice(0, end) : '';
        if (kind === 'button') {
          control.label = stripTags(content);
          if (!a.has('value')) control.value = '';
        } else if (kind === 'textarea') {
          control.value = decodeEntities(content);
        } else {
          const opts = [...content.matchAll(/<option\b[^>]*>/gi)].map((o) => parseAttributes(o[0]));
          const sel = opts.find((o) => o.has('selected')) ?? opts[0];
          control.value = sel?.get('value') ?? '';
        }
      }
      controls.push(control);
    }
    const rawAction = attrs.get('action');
    forms.push({
      method: (attrs.get('method') ?? 'get').toUpperCase(),
      action: new URL(rawAction ? rawAction : pageUrl, pageUrl).toString(),
      enctype: attrs.get('enctype') ?? 'application/x-www-form-urlencoded',
      controls,
    });
  }
  return forms;
}

function isSubmit(c) {
  return (c.kind === 'button' && c.type === 'submit') || (c.kind === 'input' && (c.type === 'submit' || c.type === 'image'));
}

function isUserField(c) {
  if (c.kind !== 'input') return false;
  if (c.type === 'email') return true;
  return (c.type === 'text' || c.type === '') && USER_FIELDS.includes(c.name.toLowerCase());
}

/** Classifies a form: "login" (has a password or user field), "consent" (has a decision control), or "other". */
export function classifyForm(form) {
  if (form.controls.some((c) => c.name === 'decision')) return 'consent';
  if (form.controls.some((c) => c.kind === 'input' && c.type === 'password')) return 'login';
  if (form.controls.some(isUserField)) return 'login';
  return 'other';
}

/**
 * Builds the body of a form submission: successful controls in document
 * order, the user's values filled in, and the chosen submit button.
 */
export function fillForm(form, { user, password, decision = 'approve' }) {
  const params = new URLSearchParams();
  const kind = classifyForm(form);
  let filledUser = false;
  let filledPassword = false;
  let decisionSet = false;
  // The submit button: for consent the one that approves; otherwise the first named one.
  let button;
  if (kind === 'consent') {
    button = form.controls.find((c) => isSubmit(c) && c.name === 'decision' && c.value === decision);
  }
  for (const c of form.controls) {
    if (c.disabled || !c.name) continue;
    if (isSubmit(c)) continue;
    if (c.kind === 'input' && (c.type === 'checkbox' || c.type === 'radio')) {
      if (c.name === 'decision') {
        if (c.value === decision && !decisionSet) {
          params.append(c.name, c.value);
          decisionSet = true;
        }
        continue;
      }
      if (c.checked) params.append(c.name, c.value || 'on');
      continue;
    }
    if (c.kind === 'input' && c.type === 'password') {
      if (password === undefined) throw new Error('login-driver: the login form asks for a password: set MCP_PASSWORD');
      params.append(c.name, password);
      filledPassword = true;
      continue;
    }
    if (isUserField(c) && !filledUser) {
      if (user === undefined) throw new Error('login-driver: the login form asks for a user name: set MCP_USER');
      params.append(c.name, user);
      filledUser = true;
      continue;
    }
    if (c.name === 'decision') {
      params.append(c.name, decision);
      decisionSet = true;
      continue;
    }
    if (c.kind === 'input' && c.type === 'file') continue;
    params.append(c.name, c.value);
  }
  if (kind === 'consent' && !decisionSet) {
    if (!button) throw new Error(`login-driver: consent form has no "${decision}" control`);
    params.append(button.name, button.value);
  } else if (kind !== 'consent') {
    const first = form.controls.find((c) => isSubmit(c) && c.name && !c.disabled);
    if (first) params.append(first.name, first.value);
  }
  return { params, kind, filledUser, filledPassword };
}

function sameTarget(location, redirectUri) {
  const a = new URL(location);
  const b = new URL(redirectUri);
  return a.protocol === b.protocol && a.host === b.host && a.pathname === b.pathname;
}

/**
 * Drives the hosted login from the authorization URL to the redirect back to
 * the client. Returns { callbackUrl, trace, pages } where callbackUrl is the
 * full redirect URL (with code, state, iss or error).
 *
 * @param {string|URL} authorizationUrl
 * @param {object} opts
 * @param {string} opts.redirectUri  the client's redirect_uri (stop there, do not fetch it)
 * @param {string} [opts.user]       MCP_USER
 * @param {string} [opts.password]   MCP_PASSWORD
 * @param {'approve'|'deny'} [opts.decision]
 * @param {typeof fetch} [opts.fetch]
 */
export async function completeHostedLogin(authorizationUrl, opts) {
  const doFetch = opts.fetch ?? fetch;
  const jar = opts.jar ?? new CookieJar();
  const trace = [];
  const pages = [];
  let submittedLogin = 0;
  let submittedConsent = 0;
  let req = { method: 'GET', url: new URL(authorizationUrl).toString(), body: undefined };
  for (let step = 0; step < MAX_STEPS; step++) {
    const headers = { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8', 'user-agent': 'caddy-mcpauth-e2e/1' };
    const cookie = jar.header(req.url);
    if (cookie) headers.cookie = cookie;
    if (req.body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      // Same-origin form posts carry an Origin like a browser does.
      headers.origin = new URL(req.url).origin;
    }
    const res = await doFetch(req.url, { method: req.method, headers, body: req.body, redirect: 'manual' });
    jar.store(req.url, res);
    const u = new URL(req.url);
    trace.push({ method: req.method, url: u.origin + u.pathname, status: res.status });
    if (res.status >= 300 && res.status < 400) {
      const loc = res.headers.get('location');
      await res.body?.cancel();
      if (!loc) throw new Error(`login-driver: ${res.status} without Location from ${u.pathname}`);
      const next = new URL(loc, req.url).toString();
      if (sameTarget(next, opts.redirectUri)) {
        return { callbackUrl: next, trace, pages };
      }
      if (res.status === 307 || res.status === 308) {
        req = { method: req.method, url: next, body: req.body };
      } else {
        req = { method: 'GET', url: next, body: undefined };
      }
      continue;
    }
    const ctype = res.headers.get('content-type') ?? '';
    const text = await res.text();
    if (!/html/i.test(ctype)) {
      throw new Error(`login-driver: ${req.method} ${u.pathname} answered ${res.status} ${ctype}: ${text.slice(0, 300)}`);
    }
    const forms = parseForms(text, req.url);
    const title = stripTags((text.match(/<title[^>]*>([\s\S]*?)<\/title>/i) ?? [, ''])[1]);
    const page = { url: u.origin + u.pathname, status: res.status, title, forms: forms.map(classifyForm) };
    pages.push(page);
    if (res.status >= 400) {
      throw new Error(`login-driver: error page ${res.status} at ${u.pathname} ("${title}"): ${stripTags(text).slice(0, 300)}`);
    }
    const consent = forms.find((f) => classifyForm(f) === 'consent');
    const login = forms.find((f) => classifyForm(f) === 'login');
    const form = consent ?? login;
    if (!form) {
      throw new Error(`login-driver: page ${u.pathname} ("${title}") has neither a login nor a consent form: ${stripTags(text).slice(0, 300)}`);
    }
    const { params, kind, filledPassword } = fillForm(form, { user: opts.user, password: opts.password, decision: opts.decision ?? 'approve' });
    if (kind === 'login' && filledPassword) {
      submittedLogin++;
      if (submittedLogin > 1) {
        throw new Error(`login-driver: the login form came back after submitting credentials (wrong MCP_USER/MCP_PASSWORD?): ${stripTags(text).slice(0, 300)}`);
      }
    }
    if (kind === 'consent') {
      submittedConsent++;
      page.consent = true;
      if (submittedConsent > 1) throw new Error('login-driver: the consent form came back after a decision');
    }
    if (form.method === 'GET') {
      const target = new URL(form.action);
      target.search = params.toString();
      req = { method: 'GET', url: target.toString(), body: undefined };
    } else {
      req = { method: 'POST', url: form.action, body: params.toString() };
    }
  }
  throw new Error(`login-driver: no redirect to ${opts.redirectUri} after ${MAX_STEPS} steps`);
}
