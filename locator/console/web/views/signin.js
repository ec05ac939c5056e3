// Sign-in: with a participant token (typed, sent once in a request header, never kept by
// the page) or with the browser's client certificate. Only the admin and participants with
// the steward role may open a console session.

import * as api from '../api.js';
import {h, replace} from '../dom.js';

export function render(main, {onSignedIn}) {
  const err = h('p', {class: 'error', role: 'alert', hidden: true});
  const token = h('input', {id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-help'});
  const user = h('input', {id: 'user', name: 'user', type: 'text', autocomplete: 'name', maxlength: '256', 'aria-describedby': 'user-help'});
  const submit = async (withToken) => {
    err.hidden = true;
    try {
      await api.signIn(withToken ? token.value.trim() : '', user.value.trim());
      token.value = '';
      onSignedIn();
    } catch (e) {
      token.value = '';
      err.textContent = e.status === 403
        ? 'Refused (403 Forbidden): this participant may not use the console, which needs the steward role (or admin).'
        : e.status === 401 ? 'Refused (401 Unauthorized): the token or certificate is not valid.' : e.message;
      err.hidden = false;
      (withToken ? token : user).focus();
    }
  };
  const form = h('form', {class: 'card signin', onsubmit: e => { e.preventDefault(); submit(true); }},
    h('h1', null, 'Sign in'),
    h('p', null, 'The console is for the exchange\u2019s data stewards and its admin. Every page you open is recorded in the audit trail, as the API calls it makes.'),
    h('div', {class: 'field'}, h('label', {for: 'token'}, 'Participant token'), token,
      h('small', {id: 'token-help'}, 'Your participant\u2019s token (rls_…). It is sent once and not stored by this page.')),
    h('div', {class: 'field'}, h('label', {for: 'user'}, 'Your name'), user,
      h('small', {id: 'user-help'}, 'Recorded as the person acting (on behalf of) in the audit trail.')),
    err,
    h('div', {class: 'actions'},
      h('button', {type: 'submit', class: 'primary'}, 'Sign in with token'),
      h('button', {type: 'button', onclick: () => submit(false)}, 'Sign in with client certificate')));
  replace(main, form);
  token.focus();
  return null;
}
