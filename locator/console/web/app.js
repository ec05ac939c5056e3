// The console's shell: sign-in, navigation, the router (hash routes that carry opaque ids
// only, never a name or a birth date) and keyboard shortcuts. Each page is a module of
// views/ that renders into <main> and may take keys.

import * as api from './api.js';
import {h, replace, typing} from './dom.js';
import * as signin from './views/signin.js';
import * as queue from './views/queue.js';
import * as review from './views/review.js';
import * as person from './views/person.js';
import * as search from './views/search.js';
import * as ops from './views/ops.js';
import * as audit from './views/audit.js';

const routes = [
  {re: /^#\/(queue)?$/, view: queue, title: 'Review queue', nav: 'queue'},
  {re: /^#\/review\/(\d+)$/, view: review, title: 'Review item', nav: 'queue'},
  {re: /^#\/person\/([A-Za-z0-9.-]{1,64})$/, view: person, title: 'Person', nav: 'search'},
  {re: /^#\/search$/, view: search, title: 'Search', nav: 'search'},
  {re: /^#\/ops$/, view: ops, title: 'Operations', nav: 'ops'},
  {re: /^#\/audit$/, view: audit, title: 'Audit', nav: 'audit', admin: true},
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const status = document.getElementById('status');
const help = document.getElementById('help');

let active = null; // the page shown: {keys, leave}
let pendingG = 0;

// flash tells the steward what just happened, in the live region screen readers announce.
export function flash(message, kind) {
  replace(status, message ? h('p', {class: 'flash ' + (kind || 'ok')}, message) : null);
}

// restart loads the console anew, so that nothing the last session read (search results,
// the queue) stays in the page's memory for whoever signs in next. The message, which names
// no patient, survives the reload in this tab's session storage.
function restart(message) {
  sessionStorage.setItem('rls-flash', message);
  location.assign('/ui/');
}

// go shows another page; message, if any, is announced once it is there.
let nextFlash = null;
function go(hash, message) {
  nextFlash = message || null;
  if (location.hash === hash) {
    flash(nextFlash);
    nextFlash = null;
    render();
  } else {
    location.hash = hash;
  }
}

function drawNav(current) {
  const links = [['#/queue', 'Review queue', 'queue', 'g q'], ['#/search', 'Search', 'search', 'g s'], ['#/ops', 'Operations', 'ops', 'g o']];
  if (api.isAdmin()) links.push(['#/audit', 'Audit', 'audit', 'g a']);
  replace(nav, h('ul', null, links.map(([href, label, key, kb]) =>
    h('li', null, h('a', {href, 'aria-current': key === current ? 'page' : null, 'aria-keyshortcuts': kb.replace(' ', '+')}, label)))));
  const s = api.current();
  replace(who, s ? [
    h('span', {class: 'who-name'}, `${s.user ? s.user + ' · ' : ''}${s.name || s.participant}`),
    h('span', {class: 'badge'}, s.role),
    h('button', {type: 'button', class: 'link', onclick: async () => { await api.signOut(); restart('Signed out.'); }}, 'Sign out'),
  ] : null);
}

// Each render draws into a stage of its own, put in <main> when the render begins. A page
// still loading when the steward moves on (keys are quicker than the API) then draws into a
// stage no longer shown, and cannot overwrite the page that replaced it; its context
// (navigation, title) is inert once it is stale, so that it cannot pull the steward back.
let generation = 0;

async function render() {
  const mine = ++generation;
  const current = () => mine === generation;
  if (active?.leave) active.leave();
  active = null;
  if (!api.current()) {
    drawNav(null);
    document.title = 'Sign in · rls console';
    active = signin.render(main, {onSignedIn: () => { flash(''); render(); }});
    return;
  }
  const hash = location.hash || '#/queue';
  const rt = routes.find(r => r.re.test(hash));
  drawNav(rt?.nav);
  if (!rt || (rt.admin && !api.isAdmin())) {
    document.title = 'Not found · rls console';
    replace(main, h('h1', null, 'Not found'), h('p', null, rt ? 'This page is for the admin role.' : 'There is no such page.'), h('p', null, h('a', {href: '#/queue'}, 'Back to the review queue')));
    main.focus();
    return;
  }
  const params = hash.match(rt.re).slice(1);
  document.title = `${rt.title} · rls console`;
  const started = performance.now();
  const root = document.documentElement;
  delete root.dataset.rendered;
  const stage = h('div', {class: 'page'}, h('p', {class: 'loading'}, 'Loading…'));
  replace(main, stage);
  main.focus();
  const ctx = {
    flash,
    // A stale page's navigation (an answer that came after the steward moved on) only
    // announces its message.
    go: (to, message) => { if (current()) go(to, message); else if (message) flash(message); },
    setTitle: t => { if (current()) document.title = `${t} · rls console`; },
  };
  let page = null;
  try {
    page = await rt.view.render(stage, params, ctx) || null;
  } catch (e) {
    replace(stage, h('h1', null, rt.title), h('p', {class: 'error', role: 'alert'}, e.message));
  }
  if (!current()) {
    if (page?.leave) page.leave();
    return;
  }
  active = page;
  // When the page is complete, and how long it took from the route to the last node: the
  // browser tests wait for this, and measure the review page with it.
  root.dataset.renderMs = (performance.now() - started).toFixed(1);
  root.dataset.rendered = hash;
}

// Keyboard: "g" then a letter moves between pages, "?" shows the shortcuts, and the page
// shown takes the rest (see each view's keys).
document.addEventListener('keydown', e => {
  if (e.key === 'Escape' && typing(e) && !e.target.closest('dialog')) {
    // Esc leaves the field, so that the page's shortcuts work again.
    e.target.blur();
    main.focus();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e) || help.open || document.querySelector('dialog[open]')) return;
  if (e.key === '?') {
    help.showModal();
    e.preventDefault();
    return;
  }
  if (pendingG && Date.now() - pendingG < 1500) {
    pendingG = 0;
    const to = {q: '#/queue', s: '#/search', o: '#/ops', a: '#/audit'}[e.key];
    if (to && api.current()) {
      e.preventDefault();
      go(to);
      return;
    }
  }
  if (e.key === 'g' && api.current()) {
    pendingG = Date.now();
    return;
  }
  if (active?.keys && active.keys(e)) e.preventDefault();
});

document.getElementById('skip').addEventListener('click', () => main.focus());
document.getElementById('help-close').addEventListener('click', () => help.close());
api.onSignedOut(() => restart('Your session has ended: sign in again.'));
window.addEventListener('hashchange', () => { flash(nextFlash); nextFlash = null; render(); });
// What the page's policy refused is kept for the browser tests to read.
window.addEventListener('securitypolicyviolation', e => {
  document.documentElement.dataset.cspViolations = String(Number(document.documentElement.dataset.cspViolations || 0) + 1);
  console.error('content security policy refused', e.violatedDirective, e.blockedURI);
});

const carried = sessionStorage.getItem('rls-flash');
if (carried) {
  sessionStorage.removeItem('rls-flash');
  flash(carried, 'warn');
}
api.resume().then(render, e => replace(main, h('p', {class: 'error', role: 'alert'}, 'The console cannot reach the node: ' + e.message)));
