// The review queue: open items (or resolved, or all) with their reason and score,
// sortable by any column and filtered by reason, score and participant; j/k move, Enter
// opens, / filters.

import * as api from '../api.js';
import {h, replace, table, bits, when} from '../dom.js';

export const reasons = {
  between_thresholds: 'Between thresholds',
  ambiguous: 'Ambiguous',
  weak_evidence: 'Weak evidence',
  duplicate_persons: 'Duplicate persons',
  household: 'Household rule',
};

// The queue's state outlives the page, so that coming back from an item finds the same
// filters, order and selection. It holds no patient data.
const state = {status: 'open', reason: '', minScore: '', maxScore: '', text: '', sort: {key: 'seq', dir: 'asc'}, selected: null, order: []};

// nextAfter is the item after seq in the queue as last shown (for "skip").
export function nextAfter(seq) {
  const i = state.order.indexOf(seq);
  return i >= 0 && i + 1 < state.order.length ? state.order[i + 1] : null;
}

// forget drops an item from the order once it is resolved.
export function forget(seq) {
  state.order = state.order.filter(s => s !== seq);
}

export async function render(main, _params, ctx) {
  const [items, orgs] = await Promise.all([api.get('/v1/review?status=' + state.status), api.participants()]);
  const who = rec => orgs.bySystem.get(String(rec).split('|')[0])?.name || String(rec).split('|')[0];
  const mrn = rec => String(rec).split('|').slice(1).join('|');

  const results = h('div', {id: 'queue-results'});
  const count = h('p', {class: 'count', 'aria-live': 'polite'});
  let rows = [];

  const filterInput = h('input', {id: 'q-text', type: 'search', value: state.text, placeholder: 'participant or identifier',
    'aria-keyshortcuts': '/', oninput: e => { state.text = e.target.value; draw(); }});
  const reasonSel = h('select', {id: 'q-reason', onchange: e => { state.reason = e.target.value; draw(); }},
    h('option', {value: ''}, 'Any reason'), Object.entries(reasons).map(([k, v]) => h('option', {value: k, selected: state.reason === k}, v)));
  const statusSel = h('select', {id: 'q-status', onchange: e => { state.status = e.target.value; ctx.go('#/queue'); }},
    [['open', 'Open'], ['resolved', 'Resolved'], ['all', 'All']].map(([k, v]) => h('option', {value: k, selected: state.status === k}, v)));
  const minIn = h('input', {id: 'q-min', type: 'number', step: '0.5', value: state.minScore, inputmode: 'decimal', oninput: e => { state.minScore = e.target.value; draw(); }});
  const maxIn = h('input', {id: 'q-max', type: 'number', step: '0.5', value: state.maxScore, inputmode: 'decimal', oninput: e => { state.maxScore = e.target.value; draw(); }});

  function visible() {
    const text = state.text.trim().toLowerCase();
    return items.filter(e => {
      if (state.reason && e.item.reason !== state.reason) return false;
      if (state.minScore !== '' && e.item.score < Number(state.minScore)) return false;
      if (state.maxScore !== '' && e.item.score > Number(state.maxScore)) return false;
      if (text && !(who(e.item.record).toLowerCase().includes(text) || String(e.item.record).toLowerCase().includes(text))) return false;
      return true;
    });
  }

  function select(seq, focus) {
    state.selected = seq;
    for (const tr of results.querySelectorAll('tbody tr[data-seq]')) {
      const on = Number(tr.dataset.seq) === seq;
      tr.classList.toggle('selected', on);
      tr.setAttribute('aria-selected', on ? 'true' : 'false');
      if (on && focus) {
        tr.focus();
        tr.scrollIntoView({block: 'nearest'});
      }
    }
  }

  function draw() {
    rows = visible();
    const columns = [
      {key: 'seq', label: 'Item', num: true, sort: e => e.seq, render: e => h('a', {href: '#/review/' + e.seq}, '#' + e.seq)},
      {key: 'reason', label: 'Reason', sort: e => e.item.reason, render: e => reasons[e.item.reason] || e.item.reason},
      {key: 'score', label: 'Score', num: true, sort: e => e.item.score, render: e => bits(e.item.score)},
      {key: 'candidates', label: 'Candidates', num: true, sort: e => e.item.candidates?.length || 0, render: e => String(e.item.candidates?.length || 0)},
      {key: 'participant', label: 'Participant', sort: e => who(e.item.record), render: e => who(e.item.record)},
      {key: 'record', label: 'Identifier', sort: e => mrn(e.item.record), render: e => mrn(e.item.record)},
    ];
    if (state.status !== 'open') {
      columns.push({key: 'resolution', label: 'Resolution', sort: e => e.resolution?.decision || '',
        render: e => e.resolution ? `${e.resolution.decision} by ${e.resolution.actor}, ${when(e.resolution.time)}` : 'open'});
    }
    const sorted = table(columns, rows, {
      caption: 'Review items', state: state.sort, onSort: s => { state.sort = s; draw(); },
      empty: state.status === 'open' ? 'Nothing to review.' : 'No items.',
      rowAttrs: e => ({'data-seq': e.seq, tabindex: '-1', 'aria-selected': 'false', ondblclick: () => ctx.go('#/review/' + e.seq)}),
    });
    replace(results, sorted);
    state.order = [...results.querySelectorAll('tbody tr[data-seq]')].map(tr => Number(tr.dataset.seq));
    count.textContent = `${rows.length} of ${items.length} ${state.status === 'all' ? '' : state.status + ' '}items`;
    if (!state.order.includes(state.selected)) state.selected = state.order[0] ?? null;
    select(state.selected, false);
  }

  replace(main,
    h('h1', null, 'Review queue'),
    h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter the queue', onsubmit: e => e.preventDefault()},
      h('div', {class: 'field'}, h('label', {for: 'q-status'}, 'Status'), statusSel),
      h('div', {class: 'field'}, h('label', {for: 'q-reason'}, 'Reason'), reasonSel),
      h('div', {class: 'field small'}, h('label', {for: 'q-min'}, 'Score from'), minIn),
      h('div', {class: 'field small'}, h('label', {for: 'q-max'}, 'to'), maxIn),
      h('div', {class: 'field grow'}, h('label', {for: 'q-text'}, 'Filter'), filterInput),
      h('button', {type: 'button', onclick: () => ctx.go('#/queue')}, 'Refresh')),
    count, results,
    h('p', {class: 'hint'}, 'Keys: j / k move, Enter opens, / filters, ? lists every shortcut.'));
  draw();

  return {
    keys(e) {
      const i = state.order.indexOf(state.selected);
      switch (e.key) {
        case 'j': case 'ArrowDown':
          if (state.order.length) select(state.order[Math.min(i + 1, state.order.length - 1)], true);
          return true;
        case 'k': case 'ArrowUp':
          if (state.order.length) select(state.order[Math.max(i - 1, 0)], true);
          return true;
        case 'Enter': case 'o':
          if (e.key === 'Enter' && e.target.closest('a, button, summary')) return false;
          if (state.selected !== null) ctx.go('#/review/' + state.selected);
          return true;
        case '/':
          filterInput.focus();
          return true;
      }
      return false;
    },
  };
}
