// The console's one way to the API: the same routes every client calls, authenticated by
// the session cookie (HttpOnly: this script never sees it), with the session's CSRF token
// on every change, the purpose of use on every query, and the signed-in person's name as
// on-behalf-of, so that the audit trail names who looked.

let session = null;
const listeners = new Set();

// ApiError is a refused or failed call, with the OperationOutcome's text.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function current() { return session; }

// onSignedOut registers a function called when the session ends (401).
export function onSignedOut(fn) { listeners.add(fn); }

// purpose is what the console's queries are for: health care operations when the
// participant may query for it (a steward's default), else its first allowed purpose.
export function purpose() {
  const p = session?.purposes || [];
  return p.includes('OPERATIONS') ? 'OPERATIONS' : (p[0] || 'OPERATIONS');
}

// headerBytes writes a name as its UTF-8 bytes, which is what an HTTP header carries (fetch
// takes header values as bytes, one character each, and refuses a "Zoë" or a "李" as is).
function headerBytes(text) {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

function headers(method, extra) {
  const hd = {'Accept': 'application/json, application/fhir+json'};
  if (session) {
    hd['X-Rls-Purpose-Of-Use'] = purpose();
    if (session.user) hd['X-Rls-On-Behalf-Of'] = headerBytes(session.user);
    if (method !== 'GET' && method !== 'HEAD') hd['X-Rls-CSRF-Token'] = session.csrf_token;
  }
  return Object.assign(hd, extra || {});
}

async function outcomeText(resp) {
  try {
    const body = await resp.json();
    if (body && body.resourceType === 'OperationOutcome' && body.issue?.length) {
      return body.issue.map(i => i.diagnostics || i.code).join('; ');
    }
  } catch (_) { /* not JSON */ }
  return resp.status + ' ' + resp.statusText;
}

// call sends one request and returns the decoded answer (null for 204). json: a body to
// send as JSON; form: URLSearchParams to send form-encoded.
export async function call(method, path, {json, form, token, onBehalfOf} = {}) {
  const extra = {};
  let body;
  if (json !== undefined) {
    extra['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    extra['Content-Type'] = 'application/x-www-form-urlencoded';
    body = form.toString();
  }
  if (token) extra['Authorization'] = 'Bearer ' + token;
  if (onBehalfOf) extra['X-Rls-On-Behalf-Of'] = headerBytes(onBehalfOf);
  const resp = await fetch(path, {method, headers: headers(method, extra), body, credentials: 'same-origin', cache: 'no-store', redirect: 'error'});
  if (resp.status === 401 && session && !token) {
    session = null;
    for (const fn of listeners) fn();
  }
  if (!resp.ok) throw new ApiError(resp.status, await outcomeText(resp));
  if (resp.status === 204) return null;
  return resp.json();
}

export const get = (path) => call('GET', path);
export const post = (path, json) => call('POST', path, {json});

// signIn opens a session with a token (or, with no token, the browser's client
// certificate). The token goes in one request header and is not kept. The sign-in is
// audited on behalf of the person signing in, as every later call is.
export async function signIn(token, user) {
  session = await call('POST', '/ui/session', {json: {user}, token: token || undefined, onBehalfOf: user || undefined});
  return session;
}

// resume asks whether the browser already holds a session.
export async function resume() {
  try {
    session = await call('GET', '/ui/session');
  } catch (e) {
    session = null;
    if (e.status !== 401) throw e;
  }
  return session;
}

export async function signOut() {
  try {
    await call('DELETE', '/ui/session');
  } finally {
    session = null;
  }
}

export const isAdmin = () => session?.role === 'admin';

// participants maps each identifier system to its participant ({id, name}), read once
// per session: a record's key names its system, and people know the hospital's name.
let orgs = null;
export async function participants() {
  if (orgs) return orgs;
  const bundle = await get('/fhir/Organization?_count=1000');
  const bySystem = new Map(), byId = new Map();
  for (const e of bundle.entry || []) {
    const o = e.resource;
    const p = {id: o.id, name: o.name};
    byId.set(o.id, p);
    for (const id of o.identifier || []) {
      if (id.system === 'urn:ietf:rfc:3986') bySystem.set(id.value, p);
    }
  }
  orgs = {bySystem, byId};
  return orgs;
}

// forget drops what was read for the last session.
export function forget() { orgs = null; }
