// Charts as SVG built node by node (no library, no inline style: classes from style.css).
// Each chart is an image with a text alternative; the pages put the numbers in a table too.

import {s, bits} from './dom.js';

function axisScale(lo, hi, x0, x1) {
  return v => x0 + (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo || 1) * (x1 - x0);
}

// gauge draws the score axis of a review item: the review and link thresholds, and each
// candidate's score as a marker.
export function gauge(lower, upper, markers) {
  const values = markers.map(m => m.value).filter(Number.isFinite);
  const lo = Math.floor(Math.min(lower - 6, ...values) / 2) * 2;
  const hi = Math.ceil(Math.max(upper + 6, ...values) / 2) * 2;
  const W = 640, H = 74, x = axisScale(lo, hi, 20, W - 20);
  const label = `Scores against the thresholds: review from ${lower}, link from ${upper}. ` +
    markers.map(m => `${m.label} ${bits(m.value)}`).join(', ');
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart gauge', role: 'img', 'aria-label': label},
    s('title', null, label),
    s('rect', {x: x(lo), y: 30, width: x(lower) - x(lo), height: 10, class: 'zone-new'}),
    s('rect', {x: x(lower), y: 30, width: x(upper) - x(lower), height: 10, class: 'zone-review'}),
    s('rect', {x: x(upper), y: 30, width: x(hi) - x(upper), height: 10, class: 'zone-link'}),
    s('line', {x1: x(lower), x2: x(lower), y1: 22, y2: 48, class: 'threshold'}),
    s('line', {x1: x(upper), x2: x(upper), y1: 22, y2: 48, class: 'threshold'}),
    s('text', {x: x(lower), y: 62, class: 'tick', 'text-anchor': 'middle'}, `review ${lower}`),
    s('text', {x: x(upper), y: 62, class: 'tick', 'text-anchor': 'middle'}, `link ${upper}`),
    s('text', {x: x(lo), y: 62, class: 'tick', 'text-anchor': 'start'}, String(lo)),
    s('text', {x: x(hi), y: 62, class: 'tick', 'text-anchor': 'end'}, String(hi)));
  markers.forEach((m, i) => {
    if (!Number.isFinite(m.value)) return;
    const cx = x(m.value);
    svg.append(
      s('path', {d: `M${cx - 6},${14} L${cx + 6},${14} L${cx},${28} Z`, class: 'marker ' + (m.cls || '')}),
      s('text', {x: cx, y: 10, class: 'marker-label', 'text-anchor': 'middle'}, m.short || String(i + 1)));
  });
  return svg;
}

// histogram draws the score distribution of recent registrations, stacked by outcome, with
// the two thresholds marked.
export function histogram(d) {
  const bins = d.bins || [];
  const W = 720, H = 260, L = 44, R = 12, T = 16, B = 44;
  const max = Math.max(1, ...bins.map(b => b.linked + b.review + b.new));
  const lo = bins.length ? bins[0].from : d.lower - 4, hi = bins.length ? bins[bins.length - 1].to : d.upper + 4;
  const x = axisScale(lo, hi, L, W - R);
  const y = v => H - B - v / max * (H - B - T);
  const label = `Scores of the last ${d.registrations} registrations by outcome (${d.outcomes?.linked || 0} linked, ` +
    `${d.outcomes?.review || 0} to review, ${d.outcomes?.new || 0} new), review threshold ${d.lower}, link threshold ${d.upper}`;
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart histogram', role: 'img', 'aria-label': label}, s('title', null, label));
  svg.append(s('line', {x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis'}));
  svg.append(s('line', {x1: L, x2: L, y1: T, y2: H - B, class: 'axis'}));
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(max * f);
    svg.append(s('text', {x: L - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end'}, String(v)));
  }
  for (const b of bins) {
    const x0 = x(b.from) + 1, w = Math.max(1, x(b.to) - x(b.from) - 2);
    let base = 0;
    for (const [k, cls] of [['linked', 'bar-linked'], ['review', 'bar-review'], ['new', 'bar-new']]) {
      const n = b[k];
      if (!n) continue;
      svg.append(s('rect', {x: x0, y: y(base + n), width: w, height: y(base) - y(base + n), class: cls},
        s('title', null, `${n} ${k} with scores from ${b.from} to ${b.to}`)));
      base += n;
    }
  }
  const step = Math.max(1, Math.ceil((hi - lo) / 12 / (d.bin_width || 1))) * (d.bin_width || 1);
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
    svg.append(s('text', {x: x(v), y: H - B + 16, class: 'tick', 'text-anchor': 'middle'}, String(v)));
  }
  svg.append(s('text', {x: (L + W - R) / 2, y: H - 6, class: 'axis-label', 'text-anchor': 'middle'}, 'score (posterior log2 odds)'));
  // The review threshold is labelled to the left of its line, the link threshold to the
  // right, so that the two never overlap however close they are.
  for (const [v, name, dx, anchor] of [[d.lower, 'review', -4, 'end'], [d.upper, 'link', 4, 'start']]) {
    svg.append(s('line', {x1: x(v), x2: x(v), y1: T - 6, y2: H - B, class: 'threshold'}),
      s('text', {x: x(v) + dx, y: T + 4, class: 'threshold-label', 'text-anchor': anchor}, `${name} ≥ ${v}`));
  }
  return svg;
}

// weights draws every field's level weights as bars left (against) or right (for) of zero.
export function weights(config) {
  const rows = [];
  for (const f of config.fields || []) {
    for (const l of f.levels || []) rows.push({field: f.field, level: l.level, w: l.weight});
  }
  const W = 720, row = 16, L = 230, R = 20, T = 20;
  const H = T + rows.length * row + 24;
  const lim = Math.max(4, ...rows.map(r => Math.abs(r.w)).filter(Number.isFinite));
  const x = axisScale(-lim, lim, L, W - R);
  const label = `Weights of ${config.fields?.length || 0} fields by agreement level (bits), configuration version ${config.version}`;
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart weights', role: 'img', 'aria-label': label}, s('title', null, label));
  let last = '';
  rows.forEach((r, i) => {
    const yy = T + i * row;
    if (r.field !== last) {
      svg.append(s('line', {x1: 0, x2: W, y1: yy, y2: yy, class: 'grid'}));
      last = r.field;
    }
    svg.append(s('text', {x: L - 8, y: yy + 12, class: 'tick', 'text-anchor': 'end'}, `${r.field} · ${r.level}`));
    const w = Number.isFinite(r.w) ? r.w : 0;
    const x0 = Math.min(x(0), x(w)), x1 = Math.max(x(0), x(w));
    svg.append(s('rect', {x: x0, y: yy + 3, width: Math.max(1, x1 - x0), height: row - 6, class: w >= 0 ? 'bar-for' : 'bar-against'},
      s('title', null, `${r.field} ${r.level}: ${bits(r.w)} bits`)));
    svg.append(s('text', {x: w >= 0 ? x1 + 4 : x0 - 4, y: yy + 12, class: 'value', 'text-anchor': w >= 0 ? 'start' : 'end'}, bits(r.w)));
  });
  svg.append(s('line', {x1: x(0), x2: x(0), y1: T - 4, y2: H - 20, class: 'axis'}));
  svg.append(s('text', {x: x(0), y: H - 6, class: 'axis-label', 'text-anchor': 'middle'}, '0 bits'));
  return svg;
}

// spark draws counts per minute as small bars.
export function spark(counts, label) {
  const W = 360, H = 48, n = counts.length || 1, max = Math.max(1, ...counts);
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart spark', role: 'img', 'aria-label': label}, s('title', null, label));
  counts.forEach((c, i) => {
    const hh = c / max * (H - 4);
    svg.append(s('rect', {x: i * W / n + 0.5, y: H - hh, width: Math.max(1, W / n - 1), height: hh, class: 'bar-linked'}));
  });
  return svg;
}
