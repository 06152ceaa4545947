// The sign-in page: posts the token once, then goes to the console.
'use strict';
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('error');
  error.hidden = true;
  const token = document.getElementById('token').value.trim();
  try {
    const response = await fetch('/login', {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({token: token}),
      credentials: 'same-origin',
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      error.textContent = body.message || ('Sign-in failed (HTTP ' + response.status + ')');
      error.hidden = false;
      return;
    }
    window.location.assign('/#/overview');
  } catch (e) {
    error.textContent = 'Cannot reach retryd: ' + e;
    error.hidden = false;
  }
});
