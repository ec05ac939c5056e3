// Audit search for the privacy officer (admin role): who asked what, about whom, why,
// and what they got. Criteria are ids and dates only; the search itself is audited.

import * as api from '../api.js';
import {h, replace, table, when} from '../dom.js';

const last = {values: {}, result: null};
const PAGE = 200;

export async function render(main, _params, ctx) {
  const inputs = {};
  const results = h('div', {id: 'audit-results', 'aria-live': 'polite'});
  const err = h('p', {class: 'error', role: 'alert', hidden: true});
  const fields = [
    ['participant', 'Participant (id)', 'text'],
    ['euid', 'Person (EUID)', 'text'],
    ['since', 'Since', 'date'],
    ['until', 'Until', 'date'],
  ];
  const btg = h('input', {type: 'checkbox', id: 'a-btg', checked: last.values.btg === 'true'});

  const show = r => {
    replace(results, h('p', {class: 'count'}, `${r.total} entr${r.total === 1 ? 'y' : 'ies'}${r.total > r.entries.length ? `, the newest ${r.entries.length} shown` : ''}`),
      table([
        {key: 'time', label: 'Time', sort: e => e.observed, render: e => when(e.observed)},
        {key: 'participant', label: 'Participant', sort: e => e.participant, render: e => e.participant},
        {key: 'obo', label: 'On behalf of', render: e => e.on_behalf_of || ''},
        {key: 'action', label: 'Action', sort: e => e.action, render: e => e.action},
        {key: 'purpose', label: 'Purpose', render: e => e.purpose || ''},
        {key: 'btg', label: 'Break-glass', render: e => e.break_glass ? h('span', {class: 'badge warn'}, 'yes') : ''},
        {key: 'persons', label: 'Persons', render: e => (e.euids || []).slice(0, 5).map((x, i) => [i ? ', ' : '', h('a', {href: '#/person/' + x}, x)])},
        {key: 'status', label: 'Status', num: true, sort: e => e.status, render: e => `${e.status}${e.outcome && e.outcome !== 'ok' ? ' ' + e.outcome : ''}`},
        {key: 'node', label: 'Node', render: e => e.node},
      ], r.entries, {caption: 'Audit entries, newest first', empty: 'No entry matches.', state: last.sort, onSort: s => { last.sort = s; show(r); }}));
  };

  const submit = async e => {
    e?.preventDefault();
    err.hidden = true;
    const q = new URLSearchParams();
    last.values = {};
    for (const [name] of fields) {
      const v = inputs[name].value.trim();
      last.values[name] = v;
      if (v) q.set(name, v);
    }
    if (btg.checked) q.set('btg', 'true');
    last.values.btg = btg.checked ? 'true' : '';
    try {
      // The trail is kept oldest first: count first, then read the newest page.
      q.set('limit', '1');
      const {total} = await api.get('/v1/audit?' + q.toString());
      q.set('limit', String(PAGE));
      q.set('offset', String(Math.max(0, total - PAGE)));
      const r = await api.get('/v1/audit?' + q.toString());
      r.entries.reverse();
      last.result = r;
      show(last.result);
    } catch (x) {
      err.textContent = x.message;
      err.hidden = false;
    }
  };

  const form = h('form', {class: 'search card', role: 'search', 'aria-label': 'Search the audit trail', onsubmit: submit},
    h('div', {class: 'grid'}, fields.map(([name, label, type]) => {
      const id = 'a-' + name;
      inputs[name] = h('input', {id, name, type, value: last.values[name] || '', autocomplete: 'off', spellcheck: 'false'});
      return h('div', {class: 'field'}, h('label', {for: id}, label), inputs[name]);
    })),
    h('div', {class: 'field inline'}, btg, h('label', {for: 'a-btg'}, 'Break-the-glass requests only')),
    err,
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Search')));
  replace(main, h('h1', null, 'Audit trail'), form, results);
  if (last.result) show(last.result);
  else await submit();
  inputs.participant.focus();
  return null;
}
