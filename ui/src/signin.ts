// First run: which server, then sign up (new account) or sign in (this is a new device).

import { api, errorText } from "./api";
import type { SessionView } from "./bindings";
import { h } from "./dom";
import { icon } from "./icons";

export function signInScreen(suggested: string | null, done: (s: SessionView) => void): HTMLElement {
  let mode: "up" | "in" = "up";
  const server = h("input", { id: "server", name: "server", required: true, autocomplete: "url", value: suggested ?? "http://127.0.0.1:7878" });
  const username = h("input", { id: "username", name: "username", required: true, autocomplete: "username", maxlength: 64, autocapitalize: "off", spellcheck: "false" });
  const password = h("input", { id: "password", name: "password", type: "password", required: true, autocomplete: "new-password" });
  const error = h("p", { class: "form-error", role: "alert", id: "signin-error" });
  const submit = h("button", { type: "submit", class: "primary", id: "signin-submit" }, "Create account");
  const toggle = h("button", { type: "button", class: "link", id: "signin-toggle" }, "I already have an account");
  const title = h("h1", {}, "Welcome to Tidings");
  const lead = h("p", { class: "lead" }, "Chats that keep working with a bad connection or none.");

  toggle.addEventListener("click", () => {
    mode = mode === "up" ? "in" : "up";
    submit.textContent = mode === "up" ? "Create account" : "Sign in";
    toggle.textContent = mode === "up" ? "I already have an account" : "Create a new account";
    password.setAttribute("autocomplete", mode === "up" ? "new-password" : "current-password");
    error.textContent = "";
  });

  const form = h("form", { class: "signin-card", "aria-labelledby": "signin-title" },
    h("div", { class: "logo", "aria-hidden": "true" }, icon("chat")),
    title,
    lead,
    h("label", { for: "server" }, "Server"),
    server,
    h("label", { for: "username" }, "Username"),
    username,
    h("label", { for: "password" }, "Password"),
    password,
    error,
    submit,
    toggle,
  );
  title.id = "signin-title";
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    if (mode === "up" && password.value.length < 8) {
      error.textContent = "Use at least 8 characters for your password.";
      password.focus();
      return;
    }
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    try {
      const call = mode === "up" ? api.signUp : api.signIn;
      done(await call(server.value, username.value, password.value));
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      submit.disabled = false;
      submit.removeAttribute("aria-busy");
    }
  });
  queueMicrotask(() => (suggested ? username : server).focus());
  return h("main", { class: "signin" }, form);
}
