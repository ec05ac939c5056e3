// PDQm search with rls's forgiving names (prefix, sound, nicknames; "exact" turns that
// off), sent by POST so that names and birth dates never appear in a URL, and leading to
// the persons found.

import * as api from '../api.js';
import {h, replace, table} from '../dom.js';
import {nameOf, addressOf, euidOf, holder, sourceIdentifiers} from '../fhirview.js';

// The last search and its results stay in memory (never in storage or the URL) so that
// coming back from a person finds them.
const last = {values: {}, exact: false, bundle: null};

const fields = [
  ['family', 'Family name', 'text', 'family-name'],
  ['given', 'Given name', 'text', 'given-name'],
  ['birthdate', 'Birth date', 'text', 'off', 'YYYY, YYYY-MM or YYYY-MM-DD'],
  ['gender', 'Sex', 'select'],
  ['address-postalcode', 'Postal code', 'text', 'off'],
  ['address-city', 'City', 'text', 'off'],
  ['telecom', 'Phone', 'text', 'off'],
  ['identifier', 'Identifier', 'text', 'off', 'system|value, or a value alone'],
];

export async function render(main, _params, ctx) {
  const orgs = await api.participants();
  const inputs = {};
  const results = h('div', {id: 'search-results', 'aria-live': 'polite'});
  const err = h('p', {class: 'error', role: 'alert', hidden: true});
  const exact = h('input', {type: 'checkbox', id: 's-exact', checked: last.exact});

  const show = bundle => {
    const rows = (bundle.entry || []).map(e => e.resource);
    replace(results, h('p', {class: 'count'}, `${bundle.total ?? rows.length} patient record(s) found`),
      table([
        {key: 'name', label: 'Name', header: true, sort: p => nameOf(p), render: p => nameOf(p)},
        {key: 'birth', label: 'Birth date', sort: p => p.birthDate || '', render: p => p.birthDate || ''},
        {key: 'sex', label: 'Sex', render: p => p.gender || ''},
        {key: 'addr', label: 'Address', render: p => addressOf(p)},
        {key: 'holder', label: 'Participant', sort: p => holder(p, orgs)?.name || '', render: p => holder(p, orgs)?.name || ''},
        {key: 'id', label: 'Identifier', render: p => sourceIdentifiers(p).map(i => i.value).join(', ')},
        {key: 'person', label: 'Person', render: p => euidOf(p) ? h('a', {href: '#/person/' + euidOf(p)}, euidOf(p)) : '—'},
      ], rows, {caption: 'Matching patient records', empty: 'Nobody matches.', state: last.sort, onSort: s => { last.sort = s; show(bundle); }}));
  };

  const submit = async e => {
    e.preventDefault();
    err.hidden = true;
    const form = new URLSearchParams();
    last.values = {};
    last.exact = exact.checked;
    for (const [name] of fields) {
      const v = inputs[name].value.trim();
      last.values[name] = v;
      if (!v) continue;
      form.set(last.exact && (name === 'family' || name === 'given') ? name + ':exact' : name, v);
    }
    if (![...form.keys()].length) {
      err.textContent = 'Give at least one criterion.';
      err.hidden = false;
      return;
    }
    form.set('_count', '50');
    try {
      last.bundle = await api.call('POST', '/fhir/Patient/_search', {form});
      show(last.bundle);
      results.querySelector('a')?.focus();
    } catch (x) {
      err.textContent = x.message;
      err.hidden = false;
      replace(results);
    }
  };

  const form = h('form', {class: 'search card', role: 'search', 'aria-label': 'Find a patient', onsubmit: submit},
    h('div', {class: 'grid'}, fields.map(([name, label, type, auto, help]) => {
      const id = 's-' + name;
      const input = type === 'select'
        ? h('select', {id, name}, [['', 'Any'], ['female', 'female'], ['male', 'male'], ['other', 'other'], ['unknown', 'unknown']]
          .map(([v, t]) => h('option', {value: v, selected: last.values[name] === v}, t)))
        : h('input', {id, name, type, autocomplete: auto, spellcheck: 'false', value: last.values[name] || '', 'aria-describedby': help ? id + '-help' : null});
      inputs[name] = input;
      return h('div', {class: 'field'}, h('label', {for: id}, label), input, help ? h('small', {id: id + '-help'}, help) : null);
    })),
    h('div', {class: 'field inline'}, exact, h('label', {for: 's-exact'}, 'Exact names (no prefixes, sounds or nicknames)')),
    err,
    h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary'}, 'Search'),
      h('button', {type: 'reset', onclick: () => { last.values = {}; last.bundle = null; replace(results); }}, 'Clear')));

  replace(main, h('h1', null, 'Search'), form, results);
  if (last.bundle) show(last.bundle);
  inputs.family.focus();
  return null;
}
