// The page's one message area (role="alert", data-test="message") and the sentences for every
// API error code. Nothing else ever shows an error: no raw JSON, no status line, no stack.

const TEXT = {
  SOLD_OUT: 'Sold out: there are not enough seats left for that. Try another zone or a smaller quantity.',
  LIMIT_EXCEEDED: 'Limit reached: you already have the most tickets one person may buy for this event.',
  PASS_REQUIRED: 'This event is sold through the waiting room: join it to get your turn.',
  PASS_INVALID: 'Your waiting-room pass is no longer valid. Join the waiting room again.',
  PASS_EXPIRED: 'Your pass expired before you chose your seats. Join the waiting room again for a new turn.',
  HOLD_EXPIRED: 'Your hold expired: the seats went back on sale. You can try again from the event page.',
  BOOKING_NOT_HELD: 'This booking is no longer held, so it cannot be paid or cancelled.',
  PAYMENT_DECLINED: 'Your card was declined. Nothing was charged: try another card.',
  RATE_LIMITED: 'Too many requests: please wait a moment.',
  JOIN_LIMITED: 'Too many joins from your network: please wait a moment.',
  UNAVAILABLE: 'The server is unavailable right now. Retrying…',
  OVERLOADED: 'The server is busy right now. Retrying…',
  CAPACITY_EXHAUSTED: 'The server is full right now. Please try again in a little while.',
  QUEUE_CLOSED: 'The waiting room is closed: the organizer is not letting anyone new in right now.',
  POW_REQUIRED: 'This event asks your browser to solve a small puzzle before joining.',
  POW_INVALID: 'The puzzle answer was not accepted. Please join again.',
  SALE_NOT_OPEN: 'The sale has not opened yet.',
  NOT_IN_QUEUE: 'You are not in this waiting room.',
  NOT_FOUND: 'That could not be found.',
  UNAUTHORIZED: 'Please sign in to continue.',
  FORBIDDEN: 'Your account is not allowed to do that.',
  EMAIL_TAKEN: 'That email address already has an account. Sign in instead.',
  IDEMPOTENCY_CONFLICT: 'That request was already sent with different details. Please try again.',
  DUPLICATE: 'That was already done.',
  INVALID_REQUEST: 'Some of the details are not valid. Please check them.',
  PAYLOAD_TOO_LARGE: 'That is too much text. Please shorten it.',
  PAYMENT_INTENT_UNEXPECTED_STATE: 'This payment has already succeeded.',
  NETWORK: 'Cannot reach the server. Retrying…',
  INTERNAL: 'Something went wrong on our side. Please try again.',
};

// The sentence for an error (an ApiError, an Error or a code string).
export function describe(err) {
  const code = typeof err === 'string' ? err : err && err.code;
  if (code && TEXT[code]) {
    if ((code === 'RATE_LIMITED' || code === 'JOIN_LIMITED') && err.retryAfterS) {
      return TEXT[code].replace('a moment', `${err.retryAfterS} second${err.retryAfterS === 1 ? '' : 's'}`);
    }
    return TEXT[code];
  }
  if (err && err.status >= 500) {
    return TEXT.UNAVAILABLE;
  }
  return TEXT.INTERNAL;
}

let sticky = false;

// Shows text in the message area. kind: 'error' | 'info' | 'ok'. keep: survives the next navigation.
export function showMessage(text, kind = 'error', keep = false) {
  const el = document.getElementById('message');
  if (!el) {
    return;
  }
  el.textContent = text;
  el.className = 'message ' + kind;
  el.dataset.kind = kind;
  sticky = keep;
}

export function showError(err, keep = false) {
  showMessage(describe(err), 'error', keep);
  const el = document.getElementById('message');
  if (el && err && err.code) {
    el.dataset.code = err.code;
  }
}

export function clearMessage() {
  const el = document.getElementById('message');
  if (el) {
    el.textContent = '';
    el.className = 'message';
    delete el.dataset.kind;
    delete el.dataset.code;
  }
}

// Called by the router on navigation: clears unless the last message asked to be kept once.
export function onNavigate() {
  if (sticky) {
    sticky = false;
    return;
  }
  clearMessage();
}
