// Operations: the cluster's members with role, term, commit and applied index, lag and
// health; registrations as they arrive (imports); where recent registrations scored
// against the thresholds; the match configuration's weights. Refreshed every 5 seconds
// while shown.

import * as api from '../api.js';
import {h, replace, bits, section, table, when, dl} from '../dom.js';
import {histogram, weights, spark} from '../charts.js';

const REFRESH_MS = 5000;

function clusterSection(status) {
  if (!status) {
    return h('p', {class: 'note'}, 'The cluster\u2019s members are shown to the admin role.');
  }
  const leader = status.members.find(m => m.id === status.leader);
  const commit = leader?.commit_index ?? Math.max(...status.members.map(m => m.commit_index || 0));
  return table([
    {key: 'id', label: 'Node', header: true, sort: m => m.id, render: m => m.id},
    {key: 'state', label: 'Role', render: m => m.state + (m.id === status.node ? ' (answering)' : '')},
    {key: 'term', label: 'Term', num: true, render: m => String(m.term ?? '')},
    {key: 'last', label: 'Last log index', num: true, render: m => String(m.last_log_index ?? '')},
    {key: 'commit', label: 'Commit index', num: true, render: m => String(m.commit_index ?? '')},
    {key: 'applied', label: 'Applied index', num: true, render: m => String(m.applied_index ?? '')},
    {key: 'lag', label: 'Lag (entries)', num: true, render: m => m.error ? '—' : String(Math.max(0, commit - (m.applied_index || 0)))},
    {key: 'contact', label: 'Leader last heard', num: true, render: m => m.state === 'Leader' ? '—' : (m.last_contact_ms >= 0 ? m.last_contact_ms + ' ms' : '—')},
    {key: 'health', label: 'Health', render: m => {
      const lag = commit - (m.applied_index || 0);
      const ok = !m.error && m.state !== 'unknown' && lag <= 250 && (m.state === 'Leader' || (m.last_contact_ms >= 0 && m.last_contact_ms < 5000));
      return h('span', {class: 'badge ' + (ok ? 'ok' : 'warn')}, ok ? 'healthy' : (m.error ? 'unreachable: ' + m.error : 'lagging'));
    }},
    {key: 'addr', label: 'Address', render: m => m.http_addr},
  ], status.members, {caption: `Leader ${status.leader || 'none'}, term ${status.term}`});
}

function activitySection(d) {
  const lastHour = d.per_minute.reduce((a, b) => a + b, 0);
  const lastMinute = d.per_minute[d.per_minute.length - 1] || 0;
  const span = d.oldest && d.newest ? (new Date(d.newest) - new Date(d.oldest)) / 1000 : 0;
  return [
    dl([
      ['Persons in the index', String(d.persons)],
      ['Open review items', h('a', {href: '#/queue'}, String(d.open_reviews))],
      ['Registrations in the last hour', String(lastHour)],
      ['In the last minute', String(lastMinute)],
      ['Newest registration', when(d.newest)],
      ['Rate over the last ' + d.registrations + ' registrations', span > 0 ? (d.registrations / span).toFixed(1) + ' per second' : '—'],
    ]),
    spark(d.per_minute, `Registrations per minute over the last hour: ${lastHour} in all`),
    h('p', {class: 'hint'}, 'Imports (rls import) run in their client, which shows their own progress; this is what the cluster has received.'),
  ];
}

function scoreSection(d) {
  const o = d.outcomes || {};
  return [
    h('p', null, `The last ${d.registrations} registrations: ${o.linked || 0} linked, ${o.review || 0} sent to review, ${o.new || 0} new persons ` +
      `(${d.no_candidate} of them met nobody and have no score). Review from ${d.lower}, link from ${d.upper}.`),
    histogram(d),
    h('p', {class: 'legend'}, h('span', {class: 'key bar-linked'}), 'linked ', h('span', {class: 'key bar-review'}), 'review ', h('span', {class: 'key bar-new'}), 'new person'),
    h('details', null, h('summary', null, 'The numbers'), table([
      {key: 'from', label: 'Score from', num: true, render: b => String(b.from)},
      {key: 'to', label: 'to', num: true, render: b => String(b.to)},
      {key: 'linked', label: 'Linked', num: true, render: b => String(b.linked)},
      {key: 'review', label: 'Review', num: true, render: b => String(b.review)},
      {key: 'new', label: 'New', num: true, render: b => String(b.new)},
    ], (d.bins || []).filter(b => b.linked + b.review + b.new), {caption: 'Registrations by score'})),
  ];
}

function configSection(c) {
  const rows = [];
  for (const f of c.fields || []) for (const l of f.levels || []) rows.push({field: f.field, ...l});
  return [
    dl([
      ['Version', String(c.version)], ['Source', c.source], ['Scoring model', String(c.model)],
      ['Link threshold (upper)', String(c.upper)], ['Review threshold (lower)', String(c.lower)],
      ['Prior match share', String(c.prior_match_share)], ['Household rules', c.household_rules ? 'on' : 'off'],
    ]),
    weights(c),
    h('details', null, h('summary', null, 'Every weight'), table([
      {key: 'field', label: 'Field', header: true, render: r => r.field},
      {key: 'level', label: 'Level', render: r => r.level},
      {key: 'm', label: 'm', num: true, render: r => r.m?.toPrecision(3)},
      {key: 'u', label: 'u', num: true, render: r => r.u?.toPrecision(3)},
      {key: 'w', label: 'Weight (bits)', num: true, render: r => bits(r.weight)},
    ], rows, {caption: 'Weights by field and level'})),
  ];
}

export async function render(main, _params, ctx) {
  const cluster = h('div', {id: 'ops-cluster'});
  const activity = h('div', {id: 'ops-activity'});
  const scores = h('div', {id: 'ops-scores'});
  const config = h('div', {id: 'ops-config'});
  const updated = h('p', {class: 'hint', 'aria-live': 'off'});

  const load = async () => {
    const [status, dist, cfg] = await Promise.all([
      api.isAdmin() ? api.get('/v1/cluster/status') : Promise.resolve(null),
      api.get('/v1/mpi/scores?limit=2000'),
      api.get('/v1/mpi/config'),
    ]);
    replace(cluster, clusterSection(status));
    replace(activity, activitySection(dist));
    replace(scores, scoreSection(dist));
    replace(config, configSection(cfg));
    updated.textContent = 'Updated ' + new Date().toLocaleTimeString();
  };
  await load();
  replace(main, h('h1', null, 'Operations'), updated,
    section('Cluster', cluster),
    section('Registrations', activity),
    section('Scores of recent registrations', scores),
    section('Match configuration', config));

  let stopped = false;
  const timer = setInterval(() => {
    if (!stopped && !document.hidden) load().catch(e => ctx.flash('Refresh failed: ' + e.message, 'warn'));
  }, REFRESH_MS);
  return {leave() { stopped = true; clearInterval(timer); }};
}
