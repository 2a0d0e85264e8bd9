// Sign in with the OAuth2 password flow; the token lives in sessionStorage,
// so it ends with the browser tab.

import { signIn } from "./api.js";

const form = document.getElementById("signin");
const problem = document.getElementById("signin-error");

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "";
  // Only pages of this site: never send a signed-in user elsewhere.
  return next.startsWith("/ui/") && !next.startsWith("//") ? next : "/ui/queue";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  problem.hidden = true;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await signIn(form.username.value.trim(), form.password.value);
    location.assign(nextPage());
  } catch (error) {
    problem.textContent =
      error.status === 401 ? "Wrong user name or password." : `Signing in failed: ${error.message}`;
    problem.hidden = false;
    button.disabled = false;
    form.password.select();
  }
});
