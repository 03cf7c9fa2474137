// Thingsafe console: calls to the JSON API with the session's CSRF token, errors shown
// next to their field, local times, and the actions of each page. No framework.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

/** An error the API answered, with the field it is about when it names one. */
class ApiProblem extends Error {
  constructor(status, message) {
    const m = /^([A-Za-z]+): (.*)$/s.exec(message || "");
    super(m ? m[2] : message || `The server answered ${status}`);
    this.status = status;
    this.field = m ? m[1] : "";
  }
}

/** Calls the API; resolves to the answer (JSON or text), rejects with an ApiProblem. */
async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiProblem(0, "The server could not be reached. Check your connection and try again.");
  }
  const text = await response.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* plain text */ }
  if (!response.ok) {
    if (response.status === 401) {
      throw new ApiProblem(401, "Your session has ended. Reload the page to sign in again.");
    }
    throw new ApiProblem(response.status, (data && data.message) || text);
  }
  return data;
}

function capitalised(s) { return s ? s[0].toUpperCase() + s.slice(1) : s; }

function clearErrors(form) {
  form.querySelectorAll("[data-error-for]").forEach((p) => { p.hidden = true; p.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
}

/** Shows `problem` next to its field, or at the form's general error line. */
function showError(form, problem) {
  const field = problem.field || "";
  let slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
  const input = field && form.querySelector(`[name="${CSS.escape(field)}"]`);
  if (!slot) slot = form.querySelector('[data-error-for=""]');
  if (!slot) { alert(problem.message); return; }
  slot.textContent = capitalised(problem.message);
  slot.hidden = false;
  slot.setAttribute("role", "alert");
  if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
}

/** Runs `action` for the form's submit, with its errors shown and its button busy. */
function onSubmit(form, action) {
  if (!form) return;
  // Correcting a field takes its error away.
  form.addEventListener("input", (event) => {
    const name = event.target.name;
    const slot = name && form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) { slot.hidden = true; event.target.removeAttribute("aria-invalid"); }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector('[type="submit"]');
    if (button) button.disabled = true;
    try {
      await action(new FormData(form));
    } catch (problem) {
      showError(form, problem instanceof ApiProblem ? problem : new ApiProblem(0, String(problem.message || problem)));
    } finally {
      if (button) button.disabled = false;
    }
  });
}

// --- times in the viewer's time zone ---------------------------------------------------

const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

function localTime(ms) { return dateTimeFormat.format(new Date(Number(ms))); }

function showLocalTimes(root) {
  root.querySelectorAll("time[data-ts]").forEach((t) => {
    const ms = Number(t.dataset.ts);
    if (!t.dateTime) t.dateTime = new Date(ms).toISOString();
    t.textContent = localTime(ms);
    t.title = `${new Date(ms).toISOString()} (UTC)`;
  });
}

// --- small shared behaviours ------------------------------------------------------------

function setUp() {
  showLocalTimes(document);
  document.querySelectorAll("#tz-note").forEach((n) => { n.textContent = `Times are shown in your time zone, ${timeZone}.`; });
  // Pages whose times the server wrote in UTC say so; with the times rewritten, say where.
  document.querySelectorAll("[data-tz-note]").forEach((n) => { n.textContent = `Times in your time zone (${timeZone}).`; });

  document.querySelectorAll("[data-open]").forEach((b) => b.addEventListener("click", () => {
    const target = document.getElementById(b.dataset.open);
    target.hidden = false;
    target.querySelector("input")?.focus();
  }));
  document.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => {
    document.getElementById(b.dataset.close).hidden = true;
  }));
  document.querySelectorAll("[data-open-dialog]").forEach((b) => b.addEventListener("click", () => {
    document.getElementById(b.dataset.openDialog).showModal();
  }));
  document.querySelectorAll("[data-close-dialog]").forEach((b) => b.addEventListener("click", () => {
    document.getElementById(b.dataset.closeDialog).close();
  }));
  document.querySelectorAll("[data-copy]").forEach((b) => b.addEventListener("click", async () => {
    const field = document.getElementById(b.dataset.copy);
    try {
      await navigator.clipboard.writeText(field.value);
    } catch (e) {
      field.select();
      document.execCommand("copy");
    }
    b.textContent = "Copied";
    setTimeout(() => { b.textContent = "Copy"; }, 2000);
  }));
  document.querySelectorAll("[data-delete]").forEach((b) => b.addEventListener("click", async () => {
    if (!confirm(b.dataset.confirm)) return;
    try {
      await api("DELETE", b.dataset.delete);
      location.reload();
    } catch (problem) {
      alert(problem.message);
    }
  }));

  setUpDevices();
  setUpDevicePage();
  setUpDeviceProfiles();
  setUpAdministration();
  setUpCookieBanner();
  setUpPolicyReview();
  setUpTwoFactor();
  setUpPrivacyCenter();
  setUpPublicRequest();
  setUpPrivacyAdmin();
}

// --- two-step sign-in (TOTP) on the profile page ----------------------------------------

function setUpTwoFactor() {
  const error = document.getElementById("two-factor-error");
  const fail = (problem) => { error.textContent = problem.message; error.hidden = false; };
  document.getElementById("two-factor-off")?.addEventListener("click", async () => {
    try {
      await api("DELETE", "/api/2fa/account/config?providerType=TOTP");
      location.reload();
    } catch (problem) { fail(problem); }
  });
  const start = document.getElementById("two-factor-start");
  const form = document.getElementById("two-factor-confirm");
  if (!start || !form) return;
  start.addEventListener("click", async () => {
    try {
      const setup = await api("POST", "/api/2fa/account/config/generate?providerType=TOTP", {});
      document.getElementById("two-factor-secret").textContent = setup.secret;
      document.getElementById("two-factor-link").href = setup.authUrl;
      form.hidden = false;
      start.hidden = true;
      document.getElementById("two-factor-code").focus();
    } catch (problem) { fail(problem); }
  });
  onSubmit(form, async () => {
    const code = document.getElementById("two-factor-code").value.trim();
    try {
      await api("POST", `/api/2fa/account/config?providerType=TOTP&verificationCode=${encodeURIComponent(code)}`, { providerType: "TOTP", useByDefault: true });
    } catch (problem) {
      throw new ApiProblem(problem.status, `code: ${problem.message}`);
    }
    location.reload();
  });
}

// --- review of the privacy policy after a material change --------------------------------

async function setUpPolicyReview() {
  const banner = document.getElementById("policy-review");
  if (!banner) return;
  let review;
  try {
    review = await api("GET", "/api/privacy/me/policy-review");
  } catch (problem) {
    return;
  }
  if (!review.reviewNeeded) return;
  // Invited users and the system administrator accepted no version: nothing "changed" for them.
  const first = review.acceptedVersion === null || review.acceptedVersion === undefined;
  for (const part of banner.querySelectorAll("[data-review]")) {
    part.hidden = (part.dataset.review === "first") !== first;
  }
  banner.setAttribute("aria-labelledby", first ? "policy-first-title" : "policy-review-title");
  for (const slot of banner.querySelectorAll("[data-policy-version]")) {
    slot.textContent = review.currentVersion;
  }
  banner.hidden = false;
  document.getElementById("policy-accept").addEventListener("click", async () => {
    const error = banner.querySelector(".error");
    try {
      await api("POST", "/api/privacy/me/policy-review", { version: review.currentVersion });
      banner.hidden = true;
    } catch (problem) {
      error.textContent = problem.message;
      error.hidden = false;
    }
  });
}

// --- cookie banner ----------------------------------------------------------------------

const SIGNALS = {
  GPC: "Your browser sends a Global Privacy Control signal. We treat it as a refusal: only the strictly necessary cookies are used, whatever you choose below.",
  DNT: "Your browser sends a Do Not Track signal. We treat it as a refusal: only the strictly necessary cookies are used, whatever you choose below.",
};

/** Asks for a cookie choice on the first visit (and again from "Cookie settings"). */
async function setUpCookieBanner() {
  const banner = document.getElementById("cookie-banner");
  if (!banner) return;
  let state;
  try { state = await api("GET", "/api/privacy/cookies"); } catch (e) { return; }
  const optional = state.categories.filter((c) => !c.necessary);
  const box = document.getElementById("cookie-categories");
  for (const c of state.categories) {
    const row = document.createElement("div");
    row.className = "field check";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.id = `cookie-${c.name}`;
    input.name = c.name;
    input.checked = c.necessary || Boolean(state.choice && state.choice[c.name]);
    input.disabled = c.necessary;
    const label = document.createElement("label");
    label.htmlFor = input.id;
    label.textContent = `${c.label || c.name}${c.necessary ? " (always on)" : ""}: ${c.description}`;
    row.append(input, label);
    box.append(row);
  }
  if (state.signal) {
    const note = document.getElementById("cookie-signal");
    note.textContent = SIGNALS[state.signal] || `Your browser sends a ${state.signal} privacy signal; we honour it.`;
    note.hidden = false;
  }
  const form = document.getElementById("cookie-form");
  const send = async (choice) => {
    clearErrors(form);
    try {
      await api("POST", "/api/privacy/cookies", { cookies: choice });
      banner.hidden = true;
    } catch (problem) {
      showError(form, problem);
    }
  };
  const all = (granted) => Object.fromEntries(optional.map((c) => [c.name, granted]));
  document.getElementById("cookie-accept").addEventListener("click", () => send(all(true)));
  document.getElementById("cookie-reject").addEventListener("click", () => send(all(false)));
  document.getElementById("cookie-choose").addEventListener("click", () => {
    document.getElementById("cookie-choices").hidden = false;
    document.getElementById("cookie-save").hidden = false;
    box.querySelector("input:not([disabled])")?.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(Object.fromEntries(optional.map((c) => [c.name, document.getElementById(`cookie-${c.name}`).checked])));
  });
  document.getElementById("cookie-settings")?.addEventListener("click", () => {
    banner.hidden = false;
    document.getElementById("cookie-accept").focus();
  });
  // Only necessary cookies exist: nothing to ask.
  if (state.choice === null && optional.length) banner.hidden = false;
}

// --- privacy center (profile page) ------------------------------------------------------

function cell(row, text, header) {
  const c = document.createElement(header ? "th" : "td");
  if (header) c.scope = "row";
  c.textContent = text;
  row.append(c);
  return c;
}

const HOW = {
  signup: "at sign-up", form: "in a form", api: "in the privacy center or the API",
  "signal:GPC": "by your browser's GPC signal", "signal:DNT": "by your browser's Do Not Track signal",
  unsubscribe_link: "with an unsubscribe link", objection: "by your objection to marketing",
  review: "after reading the changed policy",
};

function showConsents(view) {
  const body = document.querySelector("#consents tbody");
  body.replaceChildren();
  for (const c of view.current) {
    const row = document.createElement("tr");
    row.dataset.purpose = c.purpose;
    const name = cell(row, c.purpose, true);
    const description = document.createElement("p");
    description.className = "hint";
    description.textContent = c.description;
    name.append(description);
    cell(row, c.granted ? "Given" : "Not given").className = c.granted ? "granted" : "withdrawn";
    cell(row, c.time ? `${localTime(c.time)} (${HOW[c.method] || c.method})` : "never asked");
    const action = document.createElement("button");
    action.type = "button";
    action.className = c.granted ? "danger" : "primary";
    action.textContent = c.granted ? "Withdraw" : "Give consent";
    action.setAttribute("aria-label", `${action.textContent}: ${c.purpose}`);
    action.addEventListener("click", async () => {
      action.disabled = true;
      const error = document.getElementById("consents-error");
      error.hidden = true;
      try {
        showConsents(await api("PUT", "/api/privacy/me/consents", { purposes: { [c.purpose]: !c.granted } }));
      } catch (problem) {
        error.textContent = capitalised(problem.message);
        error.hidden = false;
        action.disabled = false;
      }
    });
    cell(row, "").append(action);
    body.append(row);
  }
  const history = document.querySelector("#consent-history tbody");
  history.replaceChildren();
  for (const h of [...view.history].reverse()) {
    const row = document.createElement("tr");
    cell(row, localTime(h.time), true);
    cell(row, h.purpose);
    cell(row, h.granted ? "given" : "withdrawn");
    cell(row, HOW[h.method] || h.method);
    cell(row, h.policyVersion ?? h.policy_version ?? "");
    history.append(row);
  }
}

function showReceipt(receipt) {
  const section = document.getElementById("erasure-receipt");
  document.getElementById("receipt-id").textContent = receipt.receiptId;
  document.getElementById("receipt-time").textContent = `erased ${localTime(receipt.erasedTime)}`;
  const list = (id, items, text) => {
    const ul = document.getElementById(id);
    ul.replaceChildren(...items.map((item) => {
      const li = document.createElement("li");
      li.textContent = text(item);
      return li;
    }));
  };
  list("receipt-erased", receipt.erased, (e) => `${e.what}: ${e.how}`);
  list("receipt-kept", receipt.kept, (k) => `${k.what}, ${k.why}`);
  document.getElementById("receipt-backups").textContent = `${receipt.backups.dataBackups} ${receipt.backups.explained}`;
  const blob = new Blob([JSON.stringify(receipt, null, 2)], { type: "application/json" });
  document.getElementById("receipt-download").href = URL.createObjectURL(blob);
  // Everything else on the page belonged to the erased account.
  for (const other of document.querySelectorAll("main > :not(#erasure-receipt)")) other.remove();
  document.querySelectorAll(".top nav, .top form").forEach((e) => e.remove());
  section.hidden = false;
  section.focus();
}

async function setUpPrivacyCenter() {
  if (!document.getElementById("consents")) return;
  for (const button of document.querySelectorAll("[data-revoke-grant]")) {
    button.addEventListener("click", async () => {
      const error = document.getElementById("applications-error");
      try {
        await api("DELETE", `/api/oauth2/grants/${encodeURIComponent(button.dataset.revokeGrant)}`);
        button.closest("tr").remove();
        error.hidden = true;
      } catch (problem) {
        error.textContent = capitalised(problem.message);
        error.hidden = false;
      }
    });
  }
  try {
    showConsents(await api("GET", "/api/privacy/me/consents"));
  } catch (problem) {
    const error = document.getElementById("consents-error");
    error.textContent = capitalised(problem.message);
    error.hidden = false;
  }
  onSubmit(document.getElementById("erase-form"), async (data) => {
    const password = data.get("password");
    if (!password) throw new ApiProblem(400, "password: enter your password to confirm");
    let receipt;
    try {
      receipt = await api("DELETE", "/api/privacy/me", { password });
    } catch (problem) {
      if (/password/i.test(problem.message) && !problem.field) problem.field = "password";
      throw problem;
    }
    document.getElementById("erase-dialog").close();
    showReceipt(receipt);
  });
  setUpMyRequests();
}

/** Points an API message that names one of `fields` (e.g. "the password is not right",
 * "\"details\" is longer...") at that field, so it is shown next to it. */
function aboutField(problem, fields) {
  if (!problem.field) {
    problem.field = fields.find((f) => new RegExp(`\\b${f}\\b`, "i").test(problem.message)) || "";
  }
  return problem;
}

/** Kinds of request for which the API asks for the password again. */
const PASSWORD_KINDS = ["ACCESS", "PORTABILITY", "ERASURE"];

function setUpMyRequests() {
  const form = document.getElementById("new-request-form");
  if (!form) return;
  const passwordField = document.getElementById("request-password-field");
  const showPassword = () => {
    const kind = form.querySelector('input[name="type"]:checked')?.value;
    passwordField.hidden = !PASSWORD_KINDS.includes(kind);
  };
  form.addEventListener("change", showPassword);
  showPassword();
  onSubmit(form, async (data) => {
    const body = { type: data.get("type"), details: data.get("details") || null };
    if (PASSWORD_KINDS.includes(body.type)) {
      body.password = data.get("password");
      if (!body.password) throw new ApiProblem(400, "password: enter your password to confirm it is you");
    }
    try {
      await api("POST", "/api/privacy/requests", body);
    } catch (problem) {
      throw aboutField(problem, ["password", "details", "type"]);
    }
    location.reload();
  });

  onSubmit(document.getElementById("rectify-form"), async (data) => {
    const body = {
      firstName: data.get("firstName"), lastName: data.get("lastName"), email: data.get("email"),
    };
    if (data.get("password")) body.password = data.get("password");
    let changed;
    try {
      changed = await api("PATCH", "/api/privacy/me", body);
    } catch (problem) {
      throw aboutField(problem, ["password", "email"]);
    }
    document.getElementById("rectify-password").value = "";
    const done = document.getElementById("rectify-done");
    done.textContent = changed.changed.includes("user.contact.email")
      ? "Saved. Sign in with your new email address from now on."
      : "Saved.";
    done.hidden = false;
  });

  onSubmit(document.getElementById("restrict-form"), async (data) => {
    try {
      await api("POST", "/api/privacy/me/restriction", { details: data.get("details") || null });
    } catch (problem) {
      throw aboutField(problem, ["details"]);
    }
    location.reload();
  });

  onSubmit(document.getElementById("object-form"), async () => {
    if (!confirm("Object to marketing? We stop sending you news and offers at once, for good.")) return;
    await api("POST", "/api/privacy/requests", { type: "OBJECTION", purpose: "marketing" });
    location.reload();
  });
}

// --- a request from someone without an account (/privacy/request) --------------------

function setUpPublicRequest() {
  const form = document.getElementById("public-request-form");
  if (!form) return;
  let requestId = null;
  onSubmit(form, async (data) => {
    const email = data.get("email").trim();
    if (!email) throw new ApiProblem(400, "email: enter your email address, so that we can send you the code");
    let answer;
    try {
      answer = await api("POST", "/api/privacy/requests/public", {
        email, type: data.get("type"), details: data.get("details") || null,
      });
    } catch (problem) {
      throw aboutField(problem, ["email", "details", "type"]);
    }
    requestId = answer.id;
    document.getElementById("code-sent-to").textContent = email;
    document.getElementById("request-step-ask").hidden = true;
    document.getElementById("request-step-code").hidden = false;
    document.getElementById("public-code").focus();
  });
  onSubmit(document.getElementById("public-code-form"), async (data) => {
    const code = data.get("code").trim();
    if (!/^[0-9]{6}$/.test(code)) throw new ApiProblem(400, "code: enter the 6 digits from the email");
    let answer;
    try {
      answer = await api("POST", `/api/privacy/requests/${encodeURIComponent(requestId)}/verify`, { code });
    } catch (problem) {
      throw aboutField(problem, ["code"]);
    }
    document.getElementById("request-reference").textContent = answer.id;
    document.getElementById("request-due").textContent = localDate(answer.dueTime);
    document.getElementById("request-step-code").hidden = true;
    const done = document.getElementById("request-step-done");
    done.hidden = false;
    done.focus();
  });
}

const dateFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "long", day: "numeric" });
function localDate(ms) { return dateFormat.format(new Date(Number(ms))); }

// --- Privacy & security (administrators) ------------------------------------------------

/** `datetime-local` input's value (the viewer's time) as RFC 3339, or "" when empty. */
function localInputTime(value) {
  if (!value) return "";
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? "" : at.toISOString();
}

function setUpPrivacyAdmin() {
  document.querySelectorAll("[data-assign]").forEach((b) => b.addEventListener("click", async () => {
    try {
      await api("POST", `/api/privacy/requests/${b.dataset.assign}/assign`);
      location.reload();
    } catch (problem) {
      alert(problem.message);
    }
  }));
  document.querySelectorAll("[data-lift-restriction]").forEach((b) => b.addEventListener("click", async () => {
    try {
      await api("POST", `/api/privacy/requests/${b.dataset.liftRestriction}/lift`);
      location.reload();
    } catch (problem) {
      alert(problem.message);
    }
  }));
  document.querySelectorAll("form.request-action").forEach((form) => onSubmit(form, async (data) => {
    const id = form.dataset.requestId;
    const action = form.dataset.action;
    let body;
    if (action === "complete") {
      body = { note: data.get("note").trim() || null };
    } else if (action === "reject") {
      const reason = data.get("reason").trim();
      if (!reason) throw new ApiProblem(400, "reason: say why you refuse; the person is told");
      body = { reason };
    } else {
      const days = Number(data.get("days"));
      if (!Number.isInteger(days) || days < 1) throw new ApiProblem(400, "days: enter a whole number of days, at least 1");
      const reason = data.get("reason").trim();
      if (!reason) throw new ApiProblem(400, "reason: say why you need more time; the person is told");
      body = { days, reason };
    }
    try {
      await api("POST", `/api/privacy/requests/${id}/${action}`, body);
    } catch (problem) {
      throw aboutField(problem, ["reason", "days", "note"]);
    }
    location.reload();
  }));

  onSubmit(document.getElementById("breach-form"), async (data) => {
    const detectedAt = localInputTime(data.get("detectedAt"));
    if (!detectedAt) throw new ApiProblem(400, "detectedAt: enter the date and time you noticed the breach");
    const categories = data.getAll("categories");
    if (!categories.length) throw new ApiProblem(400, "categories: tick the kinds of data the breach reached");
    const approx = data.get("approxSubjects");
    if (approx === "" || !(Number(approx) >= 0)) throw new ApiProblem(400, "approxSubjects: enter about how many people, 0 if unknown yet");
    try {
      await api("POST", "/api/privacy/breaches", {
        nature: data.get("nature"), categories, approxSubjects: Number(approx),
        consequences: data.get("consequences"), measures: data.get("measures"), detectedAt,
      });
    } catch (problem) {
      throw aboutField(problem, ["nature", "consequences", "measures", "categories", "detectedAt", "approxSubjects"]);
    }
    location.reload();
  });
  document.querySelectorAll("form.notified-form").forEach((form) => onSubmit(form, async (data) => {
    const notifiedAt = localInputTime(data.get("notifiedAt"));
    if (!notifiedAt) throw new ApiProblem(400, "notifiedAt: enter when you told the authority");
    try {
      await api("POST", `/api/privacy/breaches/${form.dataset.breachId}/notified`, {
        notifiedAt, reference: data.get("reference") || null,
      });
    } catch (problem) {
      throw aboutField(problem, ["notifiedAt"]);
    }
    location.reload();
  }));
  const showAffected = async (box) => {
    box.dataset.loaded = "1";
    const status = box.querySelector("[data-affected-status]");
    try {
      const answer = await api("GET", `/api/privacy/breaches/${box.dataset.breachId}/subjects`);
      const told = new Set(answer.notified.map((n) => n.userId));
      status.textContent = answer.subjects.length
        ? `${answer.subjects.length} ${answer.subjects.length === 1 ? "person has" : "people have"} data of these kinds:`
        : "Nobody on this server has data of these kinds.";
      box.querySelector("[data-affected-list]").replaceChildren(...answer.subjects.map((p) => {
        const li = document.createElement("li");
        li.textContent = `${p.email}: ${p.categories.join(", ")}${told.has(p.userId) ? " (told)" : ""}`;
        return li;
      }));
    } catch (problem) {
      status.textContent = capitalised(problem.message);
      status.className = "error";
    }
  };
  document.querySelectorAll("details.affected").forEach((box) => box.addEventListener("toggle", () => {
    if (box.open && !box.dataset.loaded) showAffected(box);
  }));
  document.querySelectorAll(".notify-people").forEach(setUpBreachNotices(showAffected));

  onSubmit(document.getElementById("suspend-type-form"), async (data) => {
    const type = data.get("type");
    if (!type) throw new ApiProblem(400, "type: choose the device type to suspend");
    const reason = data.get("reason").trim();
    if (!reason) throw new ApiProblem(400, "reason: say why the devices are suspended");
    const option = document.querySelector(`#suspend-type option[value="${CSS.escape(type)}"]`);
    const n = Number(option?.dataset.devices || 0);
    if (!confirm(`Suspend every device of type “${type}” (${n} now)? They are refused and disconnected until you lift it.`)) return;
    try {
      await api("POST", `/api/deviceType/${encodeURIComponent(type)}/suspension`, { reason });
    } catch (problem) {
      throw aboutField(problem, ["reason"]);
    }
    location.reload();
  });
  onSubmit(document.getElementById("suspend-tenant-form"), async (data) => {
    const tenant = data.get("tenant");
    if (!tenant) throw new ApiProblem(400, "tenant: choose the tenant to suspend");
    const reason = data.get("reason").trim();
    if (!reason) throw new ApiProblem(400, "reason: say why the tenant is suspended");
    const name = document.querySelector(`#suspend-tenant option[value="${CSS.escape(tenant)}"]`)?.textContent || tenant;
    if (!confirm(`Suspend the whole tenant “${name}”? All of its devices are refused and disconnected until you lift it.`)) return;
    try {
      await api("POST", `/api/tenant/${encodeURIComponent(tenant)}/suspension`, { reason });
    } catch (problem) {
      throw aboutField(problem, ["reason", "tenant"]);
    }
    location.reload();
  });

  document.querySelectorAll("[data-lift]").forEach((b) => b.addEventListener("click", async () => {
    if (!confirm(b.dataset.confirm)) return;
    try {
      await api("DELETE", b.dataset.lift);
      location.reload();
    } catch (problem) {
      const error = document.getElementById("suspensions-error");
      error.textContent = capitalised(problem.message);
      error.hidden = false;
    }
  }));
  onSubmit(document.getElementById("retention-form"), async (data) => {
    const raw = data.get("telemetryDays").trim();
    const days = raw === "" ? null : Number(raw);
    if (days !== null && (!Number.isInteger(days) || days < 1)) {
      throw new ApiProblem(400, "telemetryDays: enter a whole number of days, at least 1, or leave it empty");
    }
    try {
      await api("PUT", "/api/privacy/retention", { telemetryDays: days });
    } catch (problem) {
      throw aboutField(problem, ["telemetryDays"]);
    }
    location.reload();
  });
  document.getElementById("sweep-now")?.addEventListener("click", async (event) => {
    event.target.disabled = true;
    try {
      await api("POST", "/api/privacy/retention/sweep");
      location.reload();
    } catch (problem) {
      const error = document.getElementById("sweep-error");
      error.textContent = capitalised(problem.message);
      error.hidden = false;
      event.target.disabled = false;
    }
  });
  onSubmit(document.getElementById("export-schedule-form"), async (data) => {
    const keep = Number(data.get("keep"));
    if (!Number.isInteger(keep) || keep < 1 || keep > 30) throw new ApiProblem(400, "keep: keep between 1 and 30 exports");
    try {
      await api("PUT", "/api/privacy/tenant/exports/schedule", { schedule: data.get("schedule"), keep });
    } catch (problem) {
      throw aboutField(problem, ["keep", "schedule"]);
    }
    document.getElementById("export-schedule-saved").hidden = false;
  });

  const device = document.getElementById("device")?.dataset.deviceId;
  onSubmit(document.getElementById("suspend-form"), async (data) => {
    const reason = data.get("reason").trim();
    if (!reason) throw new ApiProblem(400, "reason: say why the device is suspended");
    try {
      await api("POST", `/api/device/${device}/suspension`, { reason });
    } catch (problem) {
      throw aboutField(problem, ["reason"]);
    }
    location.reload();
  });
  document.getElementById("lift-suspension")?.addEventListener("click", async () => {
    try {
      await api("DELETE", `/api/device/${device}/suspension`);
      location.reload();
    } catch (problem) {
      const error = document.getElementById("lift-error");
      error.textContent = capitalised(problem.message);
      error.hidden = false;
    }
  });
}

/**
 * A breach's "Send notices to affected people": a confirmation step that says how many
 * people will be told (those affected and not told yet), then the API mails each one
 * once and the page says how many were sent. `showAffected` refreshes the list of people.
 */
function setUpBreachNotices(showAffected) {
  return (box) => {
    const id = box.dataset.breachId;
    const start = box.querySelector("[data-notify-start]");
    const step = box.querySelector("[data-notify-confirm]");
    const count = box.querySelector("[data-notify-count]");
    const send = box.querySelector("[data-notify-send]");
    const result = box.querySelector("[data-notify-result]");
    const error = box.querySelector("[data-notify-error]");
    const fail = (problem) => {
      error.textContent = capitalised(problem.message);
      error.hidden = false;
    };
    const people = (n) => `${n} ${n === 1 ? "person" : "people"}`;
    start.addEventListener("click", async () => {
      error.hidden = true;
      result.hidden = true;
      start.disabled = true;
      try {
        const answer = await api("GET", `/api/privacy/breaches/${id}/subjects`);
        const told = new Set(answer.notified.map((n) => n.userId));
        const toTell = answer.subjects.filter((p) => !told.has(p.userId)).length;
        const already = answer.subjects.length - toTell;
        box.dataset.toTell = String(toTell);
        if (toTell === 0) {
          count.textContent = answer.subjects.length
            ? `All ${people(answer.subjects.length)} affected were told already: no notice will be sent again.`
            : "Nobody on this server has data of these kinds: there is no one to tell.";
          send.hidden = true;
        } else {
          count.textContent = `${capitalised(people(toTell))} will be told by email what happened, what data it reached, its likely consequences and what you did about it.`
            + (already ? ` ${capitalised(people(already))} told before will not be mailed again.` : "")
            + " Send the notices?";
          send.hidden = false;
        }
        step.hidden = false;
        (send.hidden ? box.querySelector("[data-notify-cancel]") : send).focus();
      } catch (problem) {
        fail(problem);
      } finally {
        start.disabled = false;
      }
    });
    box.querySelector("[data-notify-cancel]").addEventListener("click", () => {
      step.hidden = true;
      start.focus();
    });
    send.addEventListener("click", async () => {
      send.disabled = true;
      error.hidden = true;
      try {
        const answer = await api("POST", `/api/privacy/breaches/${id}/subjects/notify`);
        const sent = answer.notices.filter((n) => n.mailed).length;
        const failed = answer.notices.filter((n) => !n.mailed);
        step.hidden = true;
        result.textContent = sent
          ? `Sent ${sent} ${sent === 1 ? "notice" : "notices"}: ${people(sent)} told. Pressing again sends none to them again.`
          : "No notice sent: everyone affected was told already.";
        result.hidden = false;
        if (failed.length) {
          fail(new ApiProblem(0, `${failed.length} could not be sent (${failed[0].error}); they are not recorded as told, so pressing again retries them.`));
        }
        const affected = document.querySelector(`details.affected[data-breach-id="${CSS.escape(id)}"]`);
        if (affected) {
          delete affected.dataset.loaded;
          if (affected.open) showAffected(affected);
        }
      } catch (problem) {
        fail(problem);
      } finally {
        send.disabled = false;
      }
    });
  };
}

// --- devices ----------------------------------------------------------------------------

function setUpDevices() {
  const form = document.getElementById("add-device-form");
  onSubmit(form, async (data) => {
    const body = { name: data.get("name"), type: data.get("type"), label: data.get("label") };
    const profile = data.get("deviceProfileId");
    if (profile) body.deviceProfileId = { entityType: "DEVICE_PROFILE", id: profile };
    const device = await api("POST", "/api/device", body);
    const id = device.id.id;
    const credentials = await api("GET", `/api/device/${id}/credentials`);
    const token = credentials.credentialsId;
    const { httpBase, mqttHost, mqttPort } = form.dataset;
    const sample = `{"temperature":21.5}`;
    document.getElementById("created-name").textContent = device.name;
    document.getElementById("created-token").value = token;
    document.getElementById("created-mqtt").value =
      `mosquitto_pub -h ${mqttHost} -p ${mqttPort} -u ${token} -q 1 -t v1/devices/me/telemetry -m '${sample}'`;
    document.getElementById("created-curl").value =
      `curl -X POST ${httpBase}/api/v1/${token}/telemetry -H 'Content-Type: application/json' -d '${sample}'`;
    document.getElementById("created-link").href = `/devices/${id}`;
    form.hidden = true;
    const created = document.getElementById("device-created");
    created.hidden = false;
    document.getElementById("created-token").focus();
  });
}

/** What a person typed as an attribute value, as the JSON the device will receive. */
function typedValue(raw) {
  const text = raw.trim();
  try { return JSON.parse(text); } catch (e) { return raw; }
}

/** Shows a saved shared attribute in its table, added or changed in place. */
function showSharedAttribute(key, shown) {
  const body = document.querySelector("#shared-attributes tbody");
  let row = body.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.key = key;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = key;
    const value = document.createElement("td");
    value.className = "value";
    row.append(th, value, document.createElement("td"));
    body.append(row);
  }
  row.querySelector(".value").textContent = shown;
  const edit = row.querySelector("[data-edit-attribute]");
  if (edit) edit.dataset.value = shown;
}

function setUpDevicePage() {
  const page = document.getElementById("device");
  if (!page) return;
  const id = page.dataset.deviceId;

  onSubmit(document.getElementById("shared-form"), async (data) => {
    const key = data.get("key").trim();
    if (!key) throw new ApiProblem(400, "key: enter the attribute's name");
    const value = typedValue(data.get("value"));
    await api("POST", `/api/plugins/telemetry/DEVICE/${id}/attributes/SHARED_SCOPE`, { [key]: value });
    showSharedAttribute(key, typeof value === "string" ? value : JSON.stringify(value));
    document.getElementById("attr-key").value = "";
    document.getElementById("attr-value").value = "";
  });
  document.querySelectorAll("[data-edit-attribute]").forEach((b) => b.addEventListener("click", () => {
    document.getElementById("attr-key").value = b.dataset.editAttribute;
    const value = document.getElementById("attr-value");
    value.value = b.dataset.value;
    value.focus();
  }));

  const log = document.getElementById("rpc-log");
  onSubmit(document.getElementById("rpc-form"), async (data) => {
    const method = data.get("method").trim();
    if (!method) throw new ApiProblem(400, "method: enter the command's name, e.g. getState");
    let params;
    try { params = JSON.parse(data.get("params") || "null"); } catch (e) {
      throw new ApiProblem(400, `params: this is not JSON (${e.message}). Use {} for none, or e.g. {"on": true}`);
    }
    const seconds = Number(data.get("timeout")) || 10;
    const entry = document.createElement("div");
    entry.className = "rpc-entry";
    const sent = document.createElement("p");
    sent.textContent = `→ ${method} ${JSON.stringify(params)} (${new Date().toLocaleTimeString()})`;
    const answer = document.createElement("p");
    answer.className = "rpc-answer";
    answer.textContent = `Waiting up to ${seconds} s for the device…`;
    entry.append(sent, answer);
    log.prepend(entry);
    try {
      const reply = await api("POST", `/api/rpc/twoway/${id}`, { method, params, timeout: seconds * 1000 });
      answer.textContent = `← ${JSON.stringify(reply)}`;
      answer.classList.add("ok");
    } catch (problem) {
      answer.textContent = problem.status === 504 || problem.status === 408
        ? `✗ No answer within ${seconds} s: is the device connected and subscribed to RPC requests?`
        : `✗ ${capitalised(problem.message)}`;
      answer.classList.add("failed");
    }
  });

  const showToken = document.getElementById("show-token");
  showToken?.addEventListener("click", async () => {
    try {
      const credentials = await api("GET", `/api/device/${id}/credentials`);
      // A device with X.509 credentials has no token: say which certificate it uses.
      document.getElementById("device-token").value =
        credentials.credentialsType === "X509_CERTIFICATE"
          ? `X.509 certificate, SHA-256 ${credentials.credentialsId}`
          : credentials.credentialsId;
      document.getElementById("token-box").hidden = false;
      showToken.hidden = true;
    } catch (problem) {
      alert(problem.message);
    }
  });

  onSubmit(document.getElementById("assign-form"), async (data) => {
    const customer = data.get("customer");
    if (customer) await api("POST", `/api/customer/${customer}/device/${id}`);
    else await api("DELETE", `/api/customer/device/${id}`);
    location.reload();
  });

  const moveForm = document.getElementById("move-profile-form");
  onSubmit(moveForm, async (data) => {
    // ThingsBoard's save: the device as it is, in the profile chosen.
    const device = await api("GET", `/api/device/${id}`);
    const profile = data.get("profile") || moveForm.dataset.defaultProfile;
    await api("POST", "/api/device", {
      id: device.id, name: device.name, type: device.type, label: device.label,
      deviceProfileId: { entityType: "DEVICE_PROFILE", id: profile },
    });
    location.reload();
  });

  onSubmit(document.getElementById("delete-form"), async () => {
    await api("DELETE", `/api/device/${id}`);
    location.href = "/devices";
  });
}

// --- device profiles --------------------------------------------------------------------

/** A random key or secret for a new profile: 20 letters and digits. */
function randomCredential() {
  const letters = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  return Array.from(bytes, (b) => letters[b % letters.length]).join("");
}

/** The form field an API message about a profile is about, by the names it uses. */
function profileField(problem, type) {
  if (problem.field) return problem;
  const m = problem.message;
  const x509 = type === "X509_CERTIFICATE_CHAIN";
  if (/certificateRegExPattern/.test(m)) problem.field = "certificateRegExPattern";
  else if (x509 && /provisionDeviceSecret|CA certificate|PEM|certificate/i.test(m)) problem.field = "caPem";
  else if (/provisionDeviceKey/.test(m)) problem.field = "provisionDeviceKey";
  else if (/provisionDeviceSecret/.test(m)) problem.field = "provisionDeviceSecret";
  else if (/\bname\b/.test(m)) problem.field = "name";
  return problem;
}

function setUpDeviceProfiles() {
  const form = document.getElementById("add-profile-form");
  if (form) {
    const key = document.getElementById("profile-key");
    const secret = document.getElementById("profile-secret");
    const chosen = () => form.querySelector('[name="provisionType"]:checked').value;
    // Only the fields the chosen kind of provisioning needs are shown.
    const showFields = () => {
      const type = chosen();
      form.querySelectorAll("[data-for-types]").forEach((part) => {
        part.hidden = !part.dataset.forTypes.split(" ").includes(type);
      });
      if (!document.getElementById("profile-key-fields").hidden) {
        if (!key.value) key.value = randomCredential();
        if (!secret.value) secret.value = randomCredential();
      }
    };
    form.querySelectorAll('[name="provisionType"]').forEach((r) => r.addEventListener("change", showFields));
    showFields();
    document.getElementById("profile-ca-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (!file) return;
      const ca = document.getElementById("profile-ca");
      ca.value = await file.text();
      ca.dispatchEvent(new Event("input", { bubbles: true }));
    });
    onSubmit(form, async (data) => {
      const type = chosen();
      const body = { name: data.get("name").trim(), provisionType: type };
      if (type === "X509_CERTIFICATE_CHAIN") {
        body.profileData = { provisionConfiguration: {
          type,
          provisionDeviceSecret: data.get("caPem"),
          certificateRegExPattern: data.get("certificateRegExPattern"),
          allowCreateNewDevicesByX509Certificate: data.get("allowCreate") === "on",
        } };
      } else if (type !== "DISABLED") {
        body.provisionDeviceKey = data.get("provisionDeviceKey");
        body.provisionDeviceSecret = data.get("provisionDeviceSecret");
      }
      if (!body.name) throw new ApiProblem(400, "name: give the profile a name");
      let profile;
      try {
        profile = await api("POST", "/api/deviceProfile", body);
      } catch (problem) {
        throw profileField(problem, type);
      }
      location.href = `/device-profiles/${profile.id.id}`;
    });
  }

  const page = document.getElementById("device-profile");
  if (!page) return;
  const id = page.dataset.profileId;
  const show = document.getElementById("show-secret");
  show?.addEventListener("click", async () => {
    const shown = document.getElementById("profile-secret");
    if (show.getAttribute("aria-expanded") === "true") {
      shown.textContent = "••••••••";
      show.textContent = "Show";
      show.setAttribute("aria-expanded", "false");
      return;
    }
    try {
      const profile = await api("GET", `/api/deviceProfile/${id}`);
      shown.textContent = profile.profileData.provisionConfiguration.provisionDeviceSecret;
      show.textContent = "Hide";
      show.setAttribute("aria-expanded", "true");
    } catch (problem) {
      const error = document.getElementById("secret-error");
      error.textContent = problem.message;
      error.hidden = false;
    }
  });
  onSubmit(document.getElementById("delete-profile-form"), async () => {
    await api("DELETE", `/api/deviceProfile/${id}`);
    location.href = "/device-profiles";
  });
}

// --- customers and users ----------------------------------------------------------------

function setUpAdministration() {
  onSubmit(document.getElementById("add-customer-form"), async (data) => {
    await api("POST", "/api/customer", { title: data.get("title") });
    location.reload();
  });
  const customer = document.getElementById("customer")?.dataset.customerId;
  onSubmit(document.getElementById("assign-device-form"), async (data) => {
    await api("POST", `/api/customer/${customer}/device/${data.get("device")}`);
    location.reload();
  });
  document.querySelectorAll(".invite-form").forEach((form) => onSubmit(form, async (data) => {
    const body = {
      email: data.get("email"), authority: form.dataset.authority,
      firstName: data.get("firstName"), lastName: data.get("lastName"),
    };
    if (form.dataset.customerId) body.customerId = { entityType: "CUSTOMER", id: form.dataset.customerId };
    const user = await api("POST", "/api/user", body);
    const link = await api("GET", `/api/user/${user.id.id}/activationLink`);
    const result = form.querySelector(".invite-result");
    result.querySelector(".invite-link").value = link;
    result.hidden = false;
  }));
}

document.addEventListener("DOMContentLoaded", setUp);
