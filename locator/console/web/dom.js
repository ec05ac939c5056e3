// DOM helpers. Every node is built with createElement and textContent: the page's policy
// (require-trusted-types-for 'script') refuses innerHTML and its kin, so text from the API
// can never become markup.

const SVG = 'http://www.w3.org/2000/svg';

// h builds an element: h('a', {href: '#/queue', class: 'x'}, 'text', child, [more]).
// Attributes starting with "on" take a function; "dataset" an object; false/null skip.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  return fill(el, attrs, children);
}

// s builds an SVG element the same way.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  return fill(el, attrs, children);
}

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'required') {
      el[k] = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and puts children in it.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// bits formats a weight or score in bits with its sign.
export function bits(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '+∞' : '−∞';
  const t = Math.abs(v).toFixed(1);
  return (v > 0 ? '+' : v < 0 ? '−' : '±') + t;
}

// when formats an RFC 3339 time for people: the date and minutes, in the browser's zone.
export function when(t) {
  if (!t) return '';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return t;
  return d.toLocaleString(undefined, {year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'});
}

// table builds a data table: columns [{key, label, sort(row), render(row), num}], rows.
// Sortable columns have buttons in their headers; the sort state is kept in `state`
// ({key, dir}) so that it survives a refresh, and onSort is told of every change.
export function table(columns, rows, {caption, state, onSort, rowAttrs, empty} = {}) {
  const sorted = rows.slice();
  const col = columns.find(c => c.key === state?.key);
  if (col && col.sort) {
    const dir = state.dir === 'desc' ? -1 : 1;
    sorted.sort((a, b) => {
      const x = col.sort(a), y = col.sort(b);
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }
  const head = h('tr', null, columns.map(c => {
    const th = h('th', {scope: 'col', class: c.num ? 'num' : null});
    if (c.sort && onSort) {
      const active = state?.key === c.key;
      th.setAttribute('aria-sort', active ? (state.dir === 'desc' ? 'descending' : 'ascending') : 'none');
      th.appendChild(h('button', {type: 'button', class: 'sort', onclick: () => {
        const dir = active && state.dir !== 'desc' ? 'desc' : 'asc';
        onSort({key: c.key, dir});
      }}, c.label, h('span', {class: 'arrow', 'aria-hidden': 'true'}, active ? (state.dir === 'desc' ? ' ▼' : ' ▲') : ' ↕')));
    } else {
      th.textContent = c.label;
    }
    return th;
  }));
  const body = h('tbody', null, sorted.map((r, i) => h('tr', rowAttrs ? rowAttrs(r, i) : null,
    columns.map(c => h(c.header ? 'th' : 'td', {class: c.num ? 'num' : null, scope: c.header ? 'row' : null}, c.render ? c.render(r) : r[c.key])))));
  const t = h('table', null, caption ? h('caption', null, caption) : null, h('thead', null, head), body);
  if (!rows.length && empty) {
    body.appendChild(h('tr', null, h('td', {colspan: columns.length, class: 'empty'}, empty)));
  }
  return h('div', {class: 'table-wrap'}, t);
}

// dl builds a description list from [label, value] pairs, skipping empty values.
export function dl(pairs, cls) {
  const out = h('dl', {class: cls || 'facts'});
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '' || (Array.isArray(v) && !v.length)) continue;
    out.append(h('dt', null, k), h('dd', null, v));
  }
  return out;
}

// section is a titled region of a page.
export function section(title, ...children) {
  const id = 'sec-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', {'aria-labelledby': id}, h('h2', {id}, title), children);
}

// typing reports whether a keyboard event belongs to a field being typed in.
export function typing(e) {
  const t = e.target;
  return t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
}
