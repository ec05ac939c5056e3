// One review item side by side: the record under review and each candidate person (its
// golden view and every source record), the field-by-field explanation of the score with
// each field coloured by its agreement level and its weight, the score against the two
// thresholds, and the decision: link, keep separate, or skip, with a reason.

import * as api from '../api.js';
import {h, replace, bits, section, when} from '../dom.js';
import {gauge} from '../charts.js';
import {demographics, recordCard} from '../fhirview.js';
import {reasons, nextAfter, forget} from './queue.js';

const explainReason = {
  between_thresholds: 'The best candidate scored between the review and link thresholds: probable, not certain.',
  ambiguous: 'The record is close to more than one person, and no one of them is likely enough on its own.',
  weak_evidence: 'The score reaches the link threshold, but the record shares no identifying evidence (birth date, SSN, phone, e-mail or street address) with the candidate: names and a town alone never link.',
  duplicate_persons: 'The record matched several persons that look like one person split. It was linked to the best; linking here merges the others into it.',
  household: 'A household rule (twins, parent and child of one name, Jr/Sr) forbids linking to a strong candidate.',
};

// agreement is the colour class of a field's level: full agreement, partial (typos,
// nicknames, only the ZIP…), disagreement, or missing on one side (weighs nothing).
function agreement(level) {
  if (level === 'missing') return 'missing';
  if (level === 'disagree') return 'disagree';
  if (['exact', 'agree', 'address'].includes(level)) return 'agree';
  return 'partial';
}
const agreementText = {agree: 'agrees', partial: 'partly agrees', disagree: 'disagrees', missing: 'missing'};
const agreementMark = {agree: '✓', partial: '≈', disagree: '✗', missing: '–'};

async function maybe(p) {
  try {
    return await p;
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

// loadPerson reads a person and every source record it links, all at once: the review
// item names the person's records (person_records), so the page waits for one round of
// calls, not two.
async function loadPerson(euid, recordIds) {
  const [person, ...records] = await Promise.all([
    maybe(api.get('/fhir/Person/' + encodeURIComponent(euid))),
    ...(recordIds || []).map(id => maybe(api.get('/fhir/Patient/' + encodeURIComponent(id)))),
  ]);
  if (!person) return {euid, person: null, records: []};
  return {euid, person, records: records.filter(Boolean)};
}

// comparison is the side-by-side table: a row per field, the record's value, and for each
// candidate its closest record's value, coloured by agreement level, with the weight; then
// each candidate's evidence and score against the thresholds.
function comparison(cands, config) {
  const fields = cands.find(c => c.explanation)?.explanation.fields.map(f => f.field) || [];
  const fieldOf = (c, name) => c.explanation?.fields.find(f => f.field === name);
  const cell = (f) => {
    if (!f) return h('td', {class: 'lvl-missing'}, '—');
    const cls = agreement(f.level);
    const w = f.level === 'missing' ? 0 : f.weight + (f.adjustment || 0);
    return h('td', {class: 'cmp lvl-' + cls},
      h('span', {class: 'value'}, f.b || '—'),
      h('span', {class: 'verdict'},
        h('span', {class: 'mark', 'aria-hidden': 'true'}, agreementMark[cls]), ' ', f.level.replaceAll('_', ' '),
        h('span', {class: 'visually-hidden'}, ` (${agreementText[cls]})`),
        h('span', {class: 'weight', title: f.adjustment ? `${bits(f.weight)} for the level, ${bits(f.adjustment)} for how common the value is` : null}, bits(w) + ' bits')));
  };
  const headRow = h('tr', null, h('th', {scope: 'col'}, 'Field'), h('th', {scope: 'col'}, 'Record under review'),
    cands.map((c, i) => h('th', {scope: 'col'}, `Candidate ${i + 1}`, h('br'), h('a', {href: '#/person/' + c.euid, class: 'euid'}, c.euid))));
  const body = fields.map(name => {
    const a = cands.map(c => fieldOf(c, name)).find(Boolean)?.a;
    return h('tr', null, h('th', {scope: 'row'}, name.replaceAll('_', ' ')), h('td', {class: 'rec'}, a || '—'), cands.map(c => cell(fieldOf(c, name))));
  });
  const foot = [
    h('tr', null, h('th', {scope: 'row', colspan: 2}, 'Field evidence (sum of the weights)'),
      cands.map(c => h('td', {class: 'num'}, bits(c.explanation?.score)))),
  ];
  if (cands.some(c => c.explanation?.household_evidence)) {
    foot.push(h('tr', null, h('th', {scope: 'row', colspan: 2}, 'Household reading (two people of one home)'),
      cands.map(c => h('td', {class: 'num'}, c.explanation?.household_evidence ? bits(c.explanation.household_evidence) : '—'))));
  }
  foot.push(h('tr', {class: 'total'}, h('th', {scope: 'row', colspan: 2}, 'Score, with the prior of one person among those indexed'),
    cands.map(c => h('td', {class: 'num ' + (c.score >= config.upper ? 'lvl-agree' : c.score >= config.lower ? 'lvl-partial' : 'lvl-missing')},
      h('strong', null, bits(c.score)), ` · ${c.grade}`, c.probability ? ` · ${(c.probability * 100).toFixed(1)}%` : '',
      c.household ? h('span', {class: 'badge warn'}, `household rule: ${c.household}`) : null))));
  return h('div', {class: 'table-wrap'}, h('table', {class: 'compare'},
    h('caption', null, 'Field by field: the record against each candidate\u2019s closest record (normalised values)'),
    h('thead', null, headRow), h('tbody', null, body), h('tfoot', null, foot)));
}

export async function render(main, [seqText], ctx) {
  const seq = Number(seqText);
  const [item, config, orgs] = await Promise.all([api.get('/v1/review/' + seq), api.get('/v1/mpi/config'), api.participants()]);
  const cands = item.explained_candidates || [];
  const [record, ...people] = await Promise.all([
    maybe(api.get('/fhir/Patient/' + encodeURIComponent(item.record_patient))),
    ...cands.map(c => loadPerson(c.euid, c.person_records)),
  ]);
  ctx.setTitle(`Review item ${seq}`);
  const open = !item.resolution;
  const dup = item.item.reason === 'duplicate_persons';

  const columns = h('div', {class: 'columns'});
  columns.append(h('section', {class: 'col col-record', 'aria-labelledby': 'rec-h'},
    h('h2', {id: 'rec-h'}, 'Record under review'),
    record ? recordCard(record, orgs, {title: 'Source record'}) : h('p', {class: 'note'}, 'The record is not disclosed or no longer exists.'),
    item.current_euid ? h('p', null, 'Now on person ', h('a', {href: '#/person/' + item.current_euid}, item.current_euid)) : null));
  cands.forEach((c, i) => {
    const pd = people[i];
    const id = 'cand-h-' + i;
    columns.append(h('section', {class: 'col col-candidate', 'aria-labelledby': id, 'data-euid': c.euid},
      h('h2', {id}, `Candidate ${i + 1} `, h('a', {href: '#/person/' + c.euid, class: 'euid'}, c.euid)),
      h('h3', null, 'Golden view'),
      pd.person ? demographics(pd.person) : h('p', {class: 'note'}, 'This person no longer exists (merged) or is not disclosed.'),
      h('h3', null, `Source records (${pd.records.length})`),
      h('div', {class: 'records'}, pd.records.map(r => recordCard(r, orgs)))));
  });

  const markers = cands.map((c, i) => ({label: `candidate ${i + 1}`, short: String(i + 1), value: c.score, cls: 'c' + i}));
  const summary = h('div', {class: 'summary'},
    h('p', {class: 'reason'}, h('strong', null, (reasons[item.item.reason] || item.item.reason) + '. '), explainReason[item.item.reason] || ''),
    gauge(config.lower, config.upper, markers),
    h('p', {class: 'thresholds hint'}, `Best score ${bits(item.item.score)} bits (posterior log2 odds). A record links at ${config.upper} or above with identifying evidence; from ${config.lower} it goes to review; below, it founds a person of its own. Decided under configuration version ${item.item.config_version}.`));

  // The decision.
  const err = h('p', {class: 'error', role: 'alert', hidden: true});
  const reason = h('textarea', {id: 'reason', rows: '2', maxlength: '1024', required: true, 'aria-keyshortcuts': 'r',
    'aria-describedby': 'reason-help'});
  let chosen = 0;
  const choice = cands.length > 1 && !dup ? h('fieldset', {class: 'choice'}, h('legend', null, 'Link to'),
    cands.map((c, i) => h('label', null, h('input', {type: 'radio', name: 'target', value: String(i), checked: i === 0, onchange: () => { chosen = i; }}),
      ` ${i + 1}. ${c.euid} (${bits(c.score)})`))) : null;
  const choose = i => {
    if (!choice || i >= cands.length) return;
    chosen = i;
    choice.querySelectorAll('input')[i].checked = true;
  };
  let busy = false;
  const act = async decision => {
    if (busy || !open) return;
    const why = reason.value.trim();
    if (!why) {
      err.textContent = 'Give the reason for your decision: it is kept in the person\u2019s history.';
      err.hidden = false;
      reason.focus();
      return;
    }
    busy = true;
    err.hidden = true;
    try {
      const body = {decision, reason: why};
      if (decision === 'link' && !dup && cands[chosen]) body.euid = cands[chosen].euid;
      const res = await api.post(`/v1/review/${seq}/resolve`, body);
      forget(seq);
      if (decision === 'link') {
        ctx.go('#/person/' + res.euid, `Item #${seq} resolved: ${dup ? 'persons merged into' : 'record linked to'} ${res.euid}.`);
      } else {
        const next = nextAfter(seq);
        ctx.go(next ? '#/review/' + next : '#/queue', `Item #${seq} resolved: kept separate.`);
      }
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      busy = false;
    }
  };
  const skip = () => {
    const next = nextAfter(seq);
    ctx.go(next ? '#/review/' + next : '#/queue', `Item #${seq} skipped: still open.`);
  };
  const decisionForm = open ? h('form', {class: 'decision card', 'aria-labelledby': 'dec-h', onsubmit: e => e.preventDefault()},
    h('h2', {id: 'dec-h'}, 'Decision'),
    h('div', {class: 'row'},
    choice,
    h('div', {class: 'field'}, h('label', {for: 'reason'}, 'Reason'), reason,
      h('small', {id: 'reason-help', class: 'visually-hidden'}, 'Kept in the history of the persons concerned, with your participant as actor.')),
    h('div', {class: 'actions'},
      h('button', {type: 'button', class: 'primary', id: 'do-link', 'aria-keyshortcuts': 'l', onclick: () => act('link')}, dup ? 'Merge the persons' : 'Link', h('kbd', null, 'L')),
      h('button', {type: 'button', id: 'do-separate', 'aria-keyshortcuts': 's', onclick: () => act('separate')}, 'Keep separate', h('kbd', null, 'S')),
      h('button', {type: 'button', id: 'do-skip', 'aria-keyshortcuts': 'n', onclick: skip}, 'Skip', h('kbd', null, 'N')),
      h('a', {href: '#/queue', class: 'button', 'aria-keyshortcuts': 'u'}, 'Queue', h('kbd', null, 'U')))),
    err)
    : h('section', {class: 'decision card', 'aria-labelledby': 'dec-h'}, h('h2', {id: 'dec-h'}, 'Resolved'),
      h('p', null, `${item.resolution.decision} by ${item.resolution.actor}, ${when(item.resolution.time)}: ${item.resolution.reason || 'no reason given'}`),
      h('p', null, h('a', {href: '#/person/' + item.resolution.euid}, 'Open the person'), ' · ', h('a', {href: '#/queue'}, 'Back to the queue')));

  replace(main,
    h('h1', null, `Review item #${seq} `, h('span', {class: 'badge ' + (open ? 'open' : 'done')}, open ? 'open' : item.resolution.decision)),
    summary,
    cands.some(c => c.explanation) ? comparison(cands, config) : h('p', {class: 'note'}, 'No explanation: the records compared are gone.'),
    h('h2', {class: 'visually-hidden'}, 'The record and the candidate persons'),
    columns, decisionForm);

  return {
    keys(e) {
      if (e.key === 'u') {
        ctx.go('#/queue');
        return true;
      }
      if (!open) return false;
      if (/^[1-9]$/.test(e.key)) {
        choose(Number(e.key) - 1);
        return true;
      }
      switch (e.key) {
        case 'r': reason.focus(); return true;
        case 'l': act('link'); return true;
        case 's': act('separate'); return true;
        case 'n': skip(); return true;
      }
      return false;
    },
  };
}
