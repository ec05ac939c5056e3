// Reading the FHIR resources the API answers with, for people: names, addresses, the
// person a record belongs to, the participant that holds it.

import {h, dl, when} from './dom.js';

export const EUID_SYSTEM = 'https://rls-hie.github.io/fhir/sid/euid';

export function nameOf(r) {
  const n = (r?.name || []).find(n => n.use === 'official') || r?.name?.[0];
  if (!n) return '';
  return [...(n.prefix || []), ...(n.given || []), n.family, ...(n.suffix || [])].filter(Boolean).join(' ');
}

export function addressOf(r) {
  const a = r?.address?.[0];
  if (!a) return '';
  return [...(a.line || []), a.city, [a.state, a.postalCode].filter(Boolean).join(' ')].filter(Boolean).join(', ');
}

export function telecomOf(r, system) {
  return (r?.telecom || []).filter(t => !system || t.system === system).map(t => t.value).join('; ');
}

// euidOf is the person a Patient belongs to (rls adds it as an identifier).
export function euidOf(p) {
  return (p?.identifier || []).find(i => i.system === EUID_SYSTEM)?.value || '';
}

// sourceIdentifiers are a Patient's identifiers other than its person's.
export function sourceIdentifiers(p) {
  return (p?.identifier || []).filter(i => i.system !== EUID_SYSTEM);
}

// holder is the participant whose identifier system a record is registered under.
export function holder(p, orgs) {
  for (const id of sourceIdentifiers(p)) {
    const o = orgs.bySystem.get(id.system);
    if (o) return o;
  }
  return null;
}

// demographics is a Patient's or a Person's facts as a description list.
export function demographics(r) {
  return dl([
    ['Name', nameOf(r)],
    ['Birth date', r?.birthDate],
    ['Sex', r?.gender],
    ['Address', addressOf(r)],
    ['Phone', telecomOf(r, 'phone')],
    ['E-mail', telecomOf(r, 'email')],
  ]);
}

// recordCard shows one source record: who holds it, its identifier, its demographics.
export function recordCard(p, orgs, {title, extra} = {}) {
  const o = holder(p, orgs);
  const ids = sourceIdentifiers(p).map(i => `${i.system}|${i.value}`).join(', ');
  return h('article', {class: 'record', 'aria-label': title || `Record held by ${o?.name || 'unknown'}`},
    h('h4', null, title || (o ? o.name : 'Record')),
    dl([['Participant', o ? `${o.name} (${o.id})` : ''], ['Identifier', ids], ['Updated', when(p?.meta?.lastUpdated)]], 'facts small'),
    demographics(p), extra || null);
}
