// First run: which server, then sign up (new account) or sign in (this is a new device);
// or link this device to an account from a code shown by a device already signed in.

import { api, errorText } from "./api";
import type { SessionView } from "./bindings";
import { fill, h } from "./dom";
import { icon } from "./icons";
import { scanner } from "./scanner";

export function signInScreen(suggested: string | null, done: (s: SessionView) => void): HTMLElement {
  let mode: "up" | "in" = "up";
  const server = h("input", { id: "server", name: "server", required: true, autocomplete: "url", value: suggested ?? "http://127.0.0.1:7878" });
  const username = h("input", { id: "username", name: "username", required: true, autocomplete: "username", maxlength: 64, autocapitalize: "off", spellcheck: "false" });
  const password = h("input", { id: "password", name: "password", type: "password", required: true, autocomplete: "new-password" });
  const error = h("p", { class: "form-error", role: "alert", id: "signin-error" });
  const submit = h("button", { type: "submit", class: "primary", id: "signin-submit" }, "Create account");
  const toggle = h("button", { type: "button", class: "link", id: "signin-toggle" }, "I already have an account");
  const linkInstead = h("button", { type: "button", class: "link", id: "signin-link" }, "Link to a device I already use");
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
    linkInstead,
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
  const main = h("main", { class: "signin" }, form);
  const link = linkForm(done, () => {
    fill(main, form);
    toggle.focus();
  });
  linkInstead.addEventListener("click", () => {
    fill(main, link.form);
    link.focus();
  });
  queueMicrotask(() => (suggested ? username : server).focus());
  return main;
}

/** Links this device to an account: the code from my other device, pasted or scanned. */
function linkForm(done: (s: SessionView) => void, back: () => void): { form: HTMLFormElement; focus: () => void } {
  const code = h("input", { id: "link-code-text", name: "link-code", autocomplete: "off", autocapitalize: "off", spellcheck: "false", placeholder: "tidings:link?…" });
  const error = h("p", { class: "form-error", role: "alert", id: "link-error" });
  const submit = h("button", { type: "submit", class: "primary", id: "link-submit" }, "Link this device");
  const backButton = h("button", { type: "button", class: "link", id: "link-back" }, "Back");
  const scan = scanner({
    ids: { pick: "link-qr-pick", file: "link-qr-file", camera: "link-qr-camera" },
    status: error,
    busy: "Linking…",
    scan: api.linkDeviceImage,
    found: done,
    alive: (): boolean => form.isConnected,
  });
  const form = h("form", { class: "signin-card", "aria-labelledby": "link-title" },
    h("div", { class: "logo", "aria-hidden": "true" }, icon("chat")),
    h("h1", { id: "link-title" }, "Link this device"),
    h("p", { class: "lead" }, "Use your account here too, with no password."),
    h("ol", { class: "steps" },
      h("li", {}, "On the device you already use, open Settings › Link a new device."),
      h("li", {}, "Scan the QR code it shows, or paste its code text here.")),
    scan.buttons,
    h("p", { class: "muted small" }, "You can also paste a screenshot of the QR code."),
    scan.video,
    h("label", { for: "link-code-text" }, "Link code"),
    code,
    error,
    submit,
    backButton,
  );
  scan.takePastes(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!code.value.trim()) {
      error.textContent = "Paste the link code first.";
      code.focus();
      return;
    }
    submit.disabled = true;
    submit.setAttribute("aria-busy", "true");
    await scan.attempt(api.linkDevice(code.value));
    submit.disabled = false;
    submit.removeAttribute("aria-busy");
  });
  backButton.addEventListener("click", () => {
    scan.stop();
    error.textContent = "";
    back();
  });
  return { form, focus: () => code.focus() };
}
