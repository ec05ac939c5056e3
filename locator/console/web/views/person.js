// A person: the golden record, every source record with its participant, the link history
// as a timeline (automatic decisions and steward actions, with actor and reason), where the
// patient has records (the locate answer) and the documents, the consent directives; and
// the steward's tools: unlink a record, merge into another person, undo a merge, each
// confirmed in a dialog with a reason.

import * as api from '../api.js';
import {h, replace, bits, section, table, when, dl} from '../dom.js';
import {demographics, holder, sourceIdentifiers, nameOf} from '../fhirview.js';

async function maybe(p) {
  try {
    return await p;
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

const actionText = {
  registered: 'Registered', linked: 'Linked', unlinked: 'Unlinked', merged: 'Merged', unmerged: 'Unmerged', 'review-resolved': 'Review resolved',
};

// confirm asks, in a modal dialog, for a reason to do something, and does it.
function confirmDialog({title, body, action, label, fields = [], onDone}) {
  const reason = h('textarea', {id: 'confirm-reason', rows: '2', maxlength: '1024', required: true});
  const err = h('p', {class: 'error', role: 'alert', hidden: true});
  const dialog = h('dialog', {class: 'confirm', 'aria-labelledby': 'confirm-title'});
  const close = () => { dialog.close(); dialog.remove(); };
  const form = h('form', {method: 'dialog', onsubmit: async e => {
    e.preventDefault();
    const why = reason.value.trim();
    if (!why) {
      err.textContent = 'Give the reason: it is kept in the history.';
      err.hidden = false;
      reason.focus();
      return;
    }
    try {
      const res = await action(why);
      close();
      onDone(res);
    } catch (x) {
      err.textContent = x.message;
      err.hidden = false;
    }
  }},
  h('h2', {id: 'confirm-title'}, title), body, fields,
  h('div', {class: 'field'}, h('label', {for: 'confirm-reason'}, 'Reason'), reason),
  err,
  h('div', {class: 'actions'}, h('button', {type: 'submit', class: 'primary danger', id: 'confirm-do'}, label),
    h('button', {type: 'button', onclick: close}, 'Cancel')));
  dialog.append(form);
  dialog.addEventListener('cancel', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  (fields.length ? fields[0].querySelector('input') : reason)?.focus();
}

function timeline(events, euid, ctx) {
  return h('ol', {class: 'timeline'}, events.slice().reverse().map(ev => {
    const steward = ev.action !== 'registered' && !(ev.reason || '').startsWith('automatic') && !(ev.reason || '').startsWith('re-registration');
    const undo = ev.action === 'merged' && ev.other && ev.euid === euid
      ? h('button', {type: 'button', class: 'small', onclick: () => confirmDialog({
        title: 'Undo this merge',
        body: h('p', null, `The records that came from ${ev.other} go back to it, and are kept apart from this person.`),
        label: 'Unmerge',
        action: why => api.post('/v1/steward/unmerge', {euid: ev.other, reason: why}),
        onDone: res => ctx.go('#/person/' + res.euid, `Unmerged: ${res.records.length} record(s) back on ${res.euid}.`),
      })}, 'Undo this merge…') : null;
    return h('li', {class: 'event ' + (steward ? 'steward' : 'auto')},
      h('p', {class: 'event-head'}, h('time', {datetime: ev.time}, when(ev.time)), ' ',
        h('span', {class: 'badge'}, actionText[ev.action] || ev.action), ' by ', h('strong', null, ev.actor)),
      dl([
        ['Record', ev.record || (ev.records || []).join(', ')],
        ['Other person', ev.other ? h('a', {href: '#/person/' + ev.other}, ev.other) : ''],
        ['Outcome', ev.outcome ? `${ev.outcome}${ev.score ? ` (score ${bits(ev.score)})` : ''}` : ''],
        ['Reason', ev.reason],
      ], 'facts small'),
      undo);
  }));
}

export async function render(main, [euid], ctx) {
  ctx.setTitle('Person ' + euid);
  const enc = encodeURIComponent(euid);
  const [person, history, orgs] = await Promise.all([
    maybe(api.get('/fhir/Person/' + enc)),
    maybe(api.get(`/v1/persons/${enc}/history`)),
    api.participants(),
  ]);
  const events = history || [];
  if (!person) {
    const last = events.filter(e => e.action === 'merged' && e.euid === euid).pop();
    replace(main, h('h1', null, 'Person ', h('code', null, euid)),
      h('p', {class: 'note'}, last ? ['This person no longer exists: it was merged into ', h('a', {href: '#/person/' + last.other}, last.other), '.']
        : 'No such person, or it is not disclosed to you.'),
      last ? h('p', null, h('button', {type: 'button', onclick: () => confirmDialog({
        title: 'Undo the merge', body: h('p', null, `Its records come back from ${last.other}.`), label: 'Unmerge',
        action: why => api.post('/v1/steward/unmerge', {euid, reason: why}),
        onDone: res => ctx.go('#/person/' + res.euid, `Unmerged: ${res.records.length} record(s) back.`),
      })}, 'Undo the merge…')) : null,
      events.length ? section('Link history', timeline(events, euid, ctx)) : null);
    return null;
  }
  const ids = (person.link || []).map(l => l.target.reference.replace(/^Patient\//, ''));
  const [records, locate, docs, consents] = await Promise.all([
    Promise.all(ids.map(id => maybe(api.get('/fhir/Patient/' + encodeURIComponent(id))))),
    maybe(api.get('/v1/locate?euid=' + enc)),
    api.get('/fhir/DocumentReference?patient=Person/' + enc + '&_count=100'),
    api.get('/fhir/Consent?patient=Person/' + enc),
  ]);

  const keyOf = p => {
    const o = holder(p, orgs);
    const id = sourceIdentifiers(p).find(i => !o || orgs.bySystem.get(i.system) === o) || sourceIdentifiers(p)[0];
    return id ? `${id.system}|${id.value}` : '';
  };
  const recs = records.filter(Boolean);
  const recordTable = table([
    {key: 'participant', label: 'Participant', header: true, render: p => holder(p, orgs)?.name || '—'},
    {key: 'id', label: 'Identifier', render: p => keyOf(p).split('|').slice(1).join('|')},
    {key: 'name', label: 'Name', render: p => nameOf(p)},
    {key: 'birth', label: 'Birth date', render: p => p.birthDate || ''},
    {key: 'sex', label: 'Sex', render: p => p.gender || ''},
    {key: 'addr', label: 'Address', render: p => [...(p.address?.[0]?.line || []), p.address?.[0]?.city, p.address?.[0]?.postalCode].filter(Boolean).join(', ')},
    {key: 'phone', label: 'Phone', render: p => (p.telecom || []).filter(t => t.system === 'phone').map(t => t.value).join('; ')},
    {key: 'updated', label: 'Updated', render: p => when(p.meta?.lastUpdated)},
    {key: 'act', label: 'Action', render: p => recs.length > 1 ? h('button', {type: 'button', class: 'small', onclick: () => confirmDialog({
      title: 'Unlink this record',
      body: h('p', null, `The record ${keyOf(p)} gets a person of its own, and automatic matching never links it back to this one.`),
      label: 'Unlink',
      action: why => api.post('/v1/steward/unlink', {record: keyOf(p), reason: why}),
      onDone: res => ctx.go('#/person/' + euid, `Record unlinked: it is now person ${res.euid}.`),
    })}, 'Unlink…') : '—'},
  ], recs, {caption: `${recs.length} source record(s)`, empty: 'No record is disclosed.'});

  const mergeTarget = h('input', {id: 'merge-into', type: 'text', required: true, pattern: '[A-Za-z0-9.-]{1,64}', autocomplete: 'off', spellcheck: 'false'});
  const actions = h('div', {class: 'actions'},
    h('button', {type: 'button', id: 'merge', onclick: () => confirmDialog({
      title: 'Merge this person into another',
      body: h('p', null, `Every record of ${euid} moves to the other person; ${euid} ceases to exist (the merge can be undone from the other person's history).`),
      fields: [h('div', {class: 'field'}, h('label', {for: 'merge-into'}, 'Into person (EUID)'), mergeTarget)],
      label: 'Merge',
      action: why => {
        const into = mergeTarget.value.trim();
        if (!into) throw new Error('Give the EUID of the person to merge into.');
        return api.post('/v1/steward/merge', {from: euid, into, reason: why});
      },
      onDone: res => ctx.go('#/person/' + res.euid, `Merged ${euid} into ${res.euid}.`),
    })}, 'Merge into another person…'));

  const locTable = locate ? table([
    {key: 'p', label: 'Participant', header: true, render: l => `${l.participant.name} (${l.participant.id})`},
    {key: 'ids', label: 'Identifiers there', render: l => (l.identifiers || []).map(i => i.value).join(', ')},
    {key: 'n', label: 'Documents', num: true, render: l => String(l.document_count)},
    {key: 'newest', label: 'Newest', render: l => l.newest_document || ''},
    {key: 'types', label: 'Types', render: l => (l.document_types || []).join(', ')},
  ], locate.locations || [], {caption: 'Where this patient has records (locate)'}) : h('p', {class: 'note'}, 'The locate answer is not disclosed.');

  const docRows = (docs.entry || []).map(e => e.resource);
  const docTable = table([
    {key: 'date', label: 'Date', render: d => d.date ? when(d.date) : ''},
    {key: 'type', label: 'Type', render: d => d.type?.coding?.[0]?.display || d.type?.text || d.type?.coding?.[0]?.code || ''},
    {key: 'custodian', label: 'Custodian', render: d => d.custodian?.display || (d.custodian?.reference || '').replace(/^Organization\//, '')},
    {key: 'status', label: 'Status', render: d => d.status},
    {key: 'desc', label: 'Description', render: d => d.description || d.content?.[0]?.attachment?.title || ''},
  ], docRows, {caption: `${docs.total ?? docRows.length} document(s)`, empty: 'No document is registered for this person.'});

  const consentRows = (consents.entry || []).map(e => e.resource);
  const consentKind = c => {
    const parts = [];
    if (c.provision?.type === 'deny') parts.push('opted out of the exchange');
    for (const p of c.provision?.provision || []) {
      if (p.actor?.length) parts.push('denies ' + p.actor.map(a => a.reference.reference.replace(/^Organization\//, '')).join(', '));
      if (p.securityLabel?.length) parts.push('withholds ' + p.securityLabel.map(l => l.code).join(', '));
    }
    return parts.join('; ') || 'permits';
  };
  const consentTable = table([
    {key: 'status', label: 'Status', render: c => c.status},
    {key: 'kind', label: 'Directive', render: consentKind},
    {key: 'by', label: 'Recorded by', render: c => (c.organization?.[0]?.reference || '').replace(/^Organization\//, '')},
    {key: 'date', label: 'Date', render: c => when(c.dateTime)},
    {key: 'id', label: 'Id', render: c => c.id},
  ], consentRows, {caption: 'Consent directives of every record of this person', empty: 'No consent directive.'});

  replace(main,
    h('h1', null, 'Person ', h('code', null, euid)),
    h('div', {class: 'columns two'},
      section('Golden record', demographics(person), h('p', {class: 'hint'}, 'For each field, the value most of its records agree on.')),
      section('Steward actions', actions)),
    section('Source records', recordTable),
    section('Link history', events.length ? timeline(events, euid, ctx) : h('p', {class: 'note'}, 'No history.')),
    section('Records and documents across the exchange', locTable, docTable),
    section('Consent', consentTable));
  return null;
}
