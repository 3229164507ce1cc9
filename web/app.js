// The one-page app: a hash router over the pages in js/pages/. Each page module exports
// render(main, params, query, signal); the signal aborts when the user navigates away, which stops
// the page's timers, polls and streams. After each navigation focus moves to the page's h1 so a
// screen reader announces the new page.

import {h, fill} from './js/dom.js';
import {onNavigate, showError} from './js/messages.js';
import {currentUser, signedIn, isOrganizer, onSessionChange, clearSession, refreshToken} from './js/auth.js';
import {loginHref} from './js/nav.js';
import * as events from './js/pages/events.js';
import * as eventPage from './js/pages/event.js';
import * as queue from './js/pages/queue.js';
import * as hold from './js/pages/hold.js';
import * as bookings from './js/pages/bookings.js';
import * as login from './js/pages/login.js';
import * as organizer from './js/pages/organizer.js';
import * as orgNew from './js/pages/organizer-new.js';
import * as dashboard from './js/pages/dashboard.js';

const ROUTES = [
  [/^\/$/, events.render, 'Events'],
  [/^\/events\/(\d+)$/, eventPage.render, 'Event'],
  [/^\/queue\/(\d+)$/, queue.render, 'Waiting room'],
  [/^\/hold\/(\d+)$/, hold.render, 'Your hold'],
  [/^\/bookings$/, bookings.render, 'My bookings'],
  [/^\/login$/, login.renderLogin, 'Sign in'],
  [/^\/register$/, login.renderRegister, 'Create an account'],
  [/^\/organizer$/, organizer.render, 'Your events'],
  [/^\/organizer\/new$/, orgNew.render, 'Create an event'],
  [/^\/organizer\/events\/(\d+)$/, dashboard.render, 'Dashboard'],
];

let controller = null;

// '#/queue/1?x=2' -> {path: '/queue/1', query: URLSearchParams}
function parseHash() {
  const raw = location.hash.startsWith('#/') ? location.hash.slice(1) : '/';
  const q = raw.indexOf('?');
  return {
    path: q < 0 ? raw : raw.slice(0, q),
    query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)),
  };
}

async function route() {
  if (location.hash && !location.hash.startsWith('#/')) {
    return;  // an in-page anchor such as the skip link's #main
  }
  if (controller) {
    controller.abort();
  }
  controller = new AbortController();
  const signal = controller.signal;
  onNavigate();
  renderNav();
  const {path, query} = parseHash();
  const main = document.getElementById('main');
  for (const [re, render, title] of ROUTES) {
    const m = path.match(re);
    if (m) {
      document.title = `${title} · Booking Rush`;
      fill(main);
      try {
        await render(main, m.slice(1), query, signal);
      } catch (e) {
        if (!signal.aborted) {
          showError(e);
        }
      }
      if (!signal.aborted) {
        const h1 = main.querySelector('h1');
        if (h1 && document.activeElement === document.body) {
          h1.focus();
        }
      }
      return;
    }
  }
  document.title = 'Not found · Booking Rush';
  fill(main, h('h1', {tabindex: '-1'}, 'Page not found'),
    h('p', {}, 'There is no such page. ', h('a', {href: '#/'}, 'See the events.')));
}

function renderNav() {
  const nav = document.getElementById('nav');
  const user = currentUser();
  const items = [h('li', {}, h('a', {href: '#/', 'data-test': 'nav-events'}, 'Events'))];
  if (signedIn()) {
    items.push(h('li', {}, h('a', {href: '#/bookings', 'data-test': 'nav-bookings'}, 'My bookings')));
    if (isOrganizer()) {
      items.push(h('li', {}, h('a', {href: '#/organizer', 'data-test': 'nav-organizer'}, 'Organizer')));
    }
    items.push(h('li', {class: 'who'}, h('span', {'data-test': 'nav-user'}, user ? user.name || user.email : '')));
    items.push(h('li', {}, h('button', {type: 'button', class: 'link', 'data-test': 'logout-button', onclick: logout}, 'Sign out')));
  } else {
    items.push(h('li', {}, h('a', {href: loginHref(), 'data-test': 'nav-login'}, 'Sign in')));
    items.push(h('li', {}, h('a', {href: '#/register', 'data-test': 'nav-register'}, 'Register')));
  }
  fill(nav, items);
}

async function logout() {
  const rt = refreshToken();
  clearSession();
  if (rt) {
    try {
      await fetch('/api/v1/auth/logout', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({refresh_token: rt})});
    } catch (e) {
      // the session is gone here either way
    }
  }
  if (location.hash === '#/' || location.hash === '') {
    route();
  } else {
    location.hash = '#/';
  }
}

document.addEventListener('DOMContentLoaded', () => {
  const skip = document.querySelector('.skip-link');
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    document.getElementById('main').focus();
  });
  onSessionChange(renderNav);
  window.addEventListener('hashchange', route);
  route();
});
