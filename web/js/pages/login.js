// #/login and #/register. After signing in, GET /api/v1/auth/me gives the name and role (the nav
// shows the organizer's pages for organizers and admins), then back to ?next= or the events.

import {api} from '../api.js';
import {h, fill, heading} from '../dom.js';
import {field, setError} from '../form.js';
import {setSession, setUser} from '../auth.js';
import {showError, showMessage, clearMessage, describe} from '../messages.js';
import {solveChallenge} from '../pow.js';

function nextPath(query) {
  const n = query.get('next') || '/';
  return n.startsWith('/') && !n.startsWith('//') ? n : '/';
}

async function signIn(email, password) {
  const tok = await api('POST', '/api/v1/auth/login', {body: {email, password}});
  setSession(tok, null);
  const me = await api('GET', '/api/v1/auth/me', {auth: true});
  setUser(me);
  return me;
}

export async function renderLogin(main, params, query) {
  const email = field('Email', {type: 'email', name: 'email', autocomplete: 'username', required: true, 'data-test': 'login-email'});
  const pw = field('Password', {type: 'password', name: 'password', autocomplete: 'current-password', required: true, 'data-test': 'login-password'});
  const btn = h('button', {type: 'submit', 'data-test': 'login-button'}, 'Sign in');
  const form = h('form', {class: 'stack', novalidate: true, 'data-test': 'login-form'}, email.wrap, pw.wrap,
    h('div', {class: 'actions'}, btn));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    setError(email, email.input.value.trim() ? '' : 'Enter your email address.');
    setError(pw, pw.input.value ? '' : 'Enter your password.');
    if (!email.input.value.trim() || !pw.input.value) {
      (email.input.value.trim() ? pw.input : email.input).focus();
      return;
    }
    btn.disabled = true;
    try {
      clearMessage();
      await signIn(email.input.value.trim(), pw.input.value);
      location.hash = '#' + nextPath(query);
    } catch (err) {
      if (err.code === 'UNAUTHORIZED') {
        showMessage('Wrong email or password.', 'error');
      } else {
        showError(err);
      }
      btn.disabled = false;
    }
  });
  const next = query.get('next');
  fill(main, heading('Sign in'), form,
    h('p', {}, 'No account yet? ', h('a', {href: '#/register' + (next ? '?next=' + encodeURIComponent(next) : '')}, 'Create one.')));
}

export async function renderRegister(main, params, query) {
  const name = field('Name', {name: 'name', autocomplete: 'name', required: true, maxlength: 63, 'data-test': 'register-name'});
  const email = field('Email', {type: 'email', name: 'email', autocomplete: 'email', required: true, maxlength: 95, 'data-test': 'register-email'});
  const pw = field('Password', {type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256, 'data-test': 'register-password'}, 'At least 8 characters.');
  const btn = h('button', {type: 'submit', 'data-test': 'register-button'}, 'Create account');
  const form = h('form', {class: 'stack', novalidate: true, 'data-test': 'register-form'}, name.wrap, email.wrap, pw.wrap,
    h('div', {class: 'actions'}, btn));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = name.input.value.trim();
    const em = email.input.value.trim();
    const p = pw.input.value;
    setError(name, n ? '' : 'Enter your name.');
    setError(email, /^[^\s@]+@[^\s@]+$/.test(em) ? '' : 'Enter an email address such as ada@example.com.');
    setError(pw, p.length >= 8 ? '' : 'The password needs at least 8 characters.');
    const bad = [name, email, pw].find((f) => f.input.getAttribute('aria-invalid') === 'true');
    if (bad) {
      bad.input.focus();
      return;
    }
    btn.disabled = true;
    const body = {name: n, email: em, password: p};
    try {
      clearMessage();
      try {
        await api('POST', '/api/v1/auth/register', {body});
      } catch (err) {
        if (err.code !== 'POW_REQUIRED') {
          throw err;
        }
        showMessage('Checking your browser (a short puzzle)…', 'info');
        const sol = await solveChallenge('/api/v1/auth/challenge', undefined, false, null, null);
        await api('POST', '/api/v1/auth/register', {body: Object.assign(body, sol || {})});
      }
      await signIn(em, p);
      showMessage('Your account is ready and you are signed in.', 'ok', true);
      location.hash = '#' + nextPath(query);
    } catch (err) {
      if (err.code === 'EMAIL_TAKEN') {
        setError(email, describe(err));
        email.input.focus();
      } else if (err.code === 'INVALID_REQUEST' && err.details) {
        showMessage(`Please check the details: ${err.details}`, 'error');
      } else {
        showError(err);
      }
      btn.disabled = false;
    }
  });
  fill(main, heading('Create an account'), form,
    h('p', {}, 'Already registered? ', h('a', {href: '#/login'}, 'Sign in.')));
}
