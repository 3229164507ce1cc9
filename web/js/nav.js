// Navigation helpers shared by the pages.

import {h, fill, heading} from './dom.js';
import {signedIn} from './auth.js';

// The sign-in link that comes back to the current page afterwards.
export function loginHref() {
  const here = location.hash.startsWith('#/') ? location.hash.slice(1) : '/';
  return '#/login?next=' + encodeURIComponent(here);
}

// For pages that need a session: when signed out, draws a short page with a sign-in link and
// returns false.
export function requireLogin(main, title) {
  if (signedIn()) {
    return true;
  }
  fill(main, heading(title),
    h('p', {'data-test': 'login-required'}, 'Please ', h('a', {href: loginHref()}, 'sign in'),
      ' or ', h('a', {href: '#/register'}, 'create an account'), ' first.'));
  return false;
}

export function go(path) {
  location.hash = '#' + path;
}
