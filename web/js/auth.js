// The session: the access token in memory and in sessionStorage (this tab only, gone when the tab
// closes), the refresh token beside it. An access token that expires within 30 s is traded for a
// new one at POST /api/v1/auth/refresh first; refresh tokens rotate and a reused one revokes the
// whole session, so only one refresh is ever in flight (the promise is shared).

const KEY = 'bookingrush.session';
const EARLY_MS = 30000;

let session = load();
let refreshing = null;
const listeners = new Set();

function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    return s && s.access_token ? s : null;
  } catch (e) {
    return null;
  }
}

function save() {
  try {
    if (session) {
      sessionStorage.setItem(KEY, JSON.stringify(session));
    } else {
      sessionStorage.removeItem(KEY);
    }
  } catch (e) {
    // Storage disabled: the session lives in memory only.
  }
  for (const fn of listeners) {
    fn(session);
  }
}

export function onSessionChange(fn) {
  listeners.add(fn);
}

export function currentUser() {
  return session ? session.user || null : null;
}

export function signedIn() {
  return session !== null;
}

export function isOrganizer() {
  const u = currentUser();
  return !!u && (u.role === 'organizer' || u.role === 'admin');
}

// token: a Token answer (login or refresh). user: a User, or undefined to keep the one known.
export function setSession(token, user) {
  session = {
    access_token: token.access_token,
    expires_at: token.expires_at,
    refresh_token: token.refresh_token || (session && session.refresh_token) || null,
    user: user || (session && session.user) || null,
  };
  save();
}

export function setUser(user) {
  if (session) {
    session.user = user;
    save();
  }
}

export function clearSession() {
  session = null;
  save();
}

export function refreshToken() {
  return session ? session.refresh_token : null;
}

// A usable access token, refreshing it first when it is about to expire; null when signed out.
// force: refresh even if it looks valid (the server answered 401).
export async function accessToken(force = false) {
  if (!session) {
    return null;
  }
  const exp = Date.parse(session.expires_at || '');
  const fresh = Number.isFinite(exp) ? exp - Date.now() > EARLY_MS : true;
  if (fresh && !force) {
    return session.access_token;
  }
  if (!session.refresh_token) {
    return force ? null : session.access_token;
  }
  if (!refreshing) {
    refreshing = doRefresh().finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function doRefresh() {
  const rt = session.refresh_token;
  let res;
  try {
    res = await fetch('/api/v1/auth/refresh', {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
      body: JSON.stringify({refresh_token: rt}),
    });
  } catch (e) {
    return session ? session.access_token : null;  // offline: try the old one
  }
  if (res.status === 401) {
    clearSession();  // revoked, expired or reused: sign in again
    return null;
  }
  if (!res.ok) {
    return session ? session.access_token : null;
  }
  const tok = await res.json();
  if (session && session.refresh_token === rt) {
    setSession(tok);
  }
  return tok.access_token;
}
