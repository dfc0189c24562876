// Shared helpers of Reel's pages: the token, API calls that turn
// problem+json into messages, the page header, and small formatters.

const TOKEN_KEY = "reel.token";

// The token comes from ?token= (kept for this tab) or from the header's
// field; it is sent as "Authorization: Bearer".
export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  value = (value || "").trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  const input = document.getElementById("token");
  if (input && input.value !== value) input.value = value;
}

{
  const params = new URLSearchParams(location.search);
  if (params.has("token")) setToken(params.get("token"));
}

export function authHeaders(headers = {}) {
  const t = getToken();
  return t ? { ...headers, Authorization: "Bearer " + t } : headers;
}

// withToken adds ?token= to a URL that the browser fetches by itself
// (<video src>, download links), which cannot carry a header.
export function withToken(url) {
  const t = getToken();
  if (!t) return url;
  const u = new URL(url, location.href);
  u.searchParams.set("token", t);
  return u.pathname + u.search;
}

// ApiError is a failed request with the server's explanation.
export class ApiError extends Error {
  constructor(status, detail, response) {
    super(detail);
    this.status = status;
    this.response = response;
    this.retryAfter = Number(response?.headers.get("Retry-After")) || 0;
  }
}

// sentence ends text with a full stop unless it has one.
export function sentence(text) {
  text = String(text || "").trim();
  return /[.!?…]$/.test(text) ? text : text + ".";
}

// describe reads a failed response's problem+json into one sentence.
export async function describe(resp) {
  let detail = "";
  try {
    const type = resp.headers.get("Content-Type") || "";
    if (type.includes("json")) {
      const p = await resp.json();
      detail = p.detail || p.title || "";
    } else {
      detail = (await resp.text()).trim().slice(0, 300);
    }
  } catch { /* an empty or broken body: fall back to the status */ }
  return sentence(detail || `the server answered ${resp.status} ${resp.statusText || ""}`);
}

// api makes a request with the token; a non-2xx answer throws ApiError.
// A network failure throws ApiError with status 0.
export async function api(url, opts = {}) {
  let resp;
  try {
    resp = await fetch(url, { ...opts, headers: authHeaders(opts.headers || {}) });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the Reel server (${err.message}). Is it running?`, null);
  }
  if (!resp.ok) throw new ApiError(resp.status, await describe(resp), resp);
  return resp;
}

// apiWithToken is api, but on 401 it asks for a token and tries again.
export async function apiWithToken(url, opts = {}) {
  for (;;) {
    try {
      return await api(url, opts);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      const t = await askToken(err.message);
      if (t === null) throw err;
    }
  }
}

// askToken shows a dialog asking for a token; it resolves to the token,
// which it also keeps, or null when cancelled.
export function askToken(why) {
  let dlg = document.getElementById("token-dialog");
  if (!dlg) {
    dlg = el("dialog", { id: "token-dialog" },
      el("form", { method: "dialog" },
        el("strong", {}, "A token is needed"),
        el("p", { class: "small", id: "token-why" }),
        el("label", { class: "small" }, "Token", el("input", { type: "password", name: "token", autocomplete: "off", required: "" })),
        el("menu", {},
          el("button", { value: "cancel", formnovalidate: "" }, "Cancel"),
          el("button", { value: "ok", class: "primary" }, "Use token"))));
    document.body.append(dlg);
  }
  dlg.querySelector("#token-why").textContent = capital(why);
  const input = dlg.querySelector("input");
  input.value = getToken();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      if (dlg.returnValue === "ok" && input.value.trim()) {
        setToken(input.value);
        resolve(input.value.trim());
      } else resolve(null);
    }, { once: true });
    dlg.returnValue = "";
    dlg.showModal();
    input.focus();
  });
}

// el builds an element. Text children are set as text, never as HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// show puts a message in box: kind is error, warn, ok or info; "" clears.
export function show(box, kind, text, ...extra) {
  box.className = "message " + (kind || "");
  box.replaceChildren();
  if (text) box.append(capital(text), ...extra);
}

// capital starts a message with a capital letter (server details start
// in lower case, to be quoted after a colon).
export function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// header fills <header class="top"> with the navigation and token field.
export function header(current) {
  const h = document.querySelector("header.top");
  const link = (href, text) => el("a", { href, "aria-current": current === href ? "page" : undefined }, text);
  const input = el("input", { id: "token", type: "password", placeholder: "none", autocomplete: "off", value: getToken(), "aria-label": "Token" });
  input.addEventListener("change", () => setToken(input.value));
  h.replaceChildren(
    el("a", { class: "brand", href: "/" }, "Reel"),
    el("nav", {}, link("/", "Live"), link("/publish", "Publish"), link("/recordings", "Recordings"), link("/meetings", "Meetings")),
    el("label", { class: "token" }, "Token", input));
}

let configPromise;
// serverConfig is what the pages need to know of the server's settings.
export function serverConfig() {
  configPromise ||= fetch("/ui/config.json").then((r) => r.json()).catch(() => ({ rtsp_port: 0, hls: false, auth: false }));
  return configPromise;
}

// streamFromPath is the {stream} of /watch/{stream} and /publish/{stream}.
export function streamFromPath(prefix) {
  const rest = location.pathname.slice(prefix.length).replace(/^\/+|\/+$/g, "");
  return rest ? decodeURIComponent(rest) : "";
}

export const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/;

export function fmtBytes(n) {
  if (!n) return "0\u00a0B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1000)));
  return (n / 1000 ** i).toFixed(i ? 1 : 0) + "\u00a0" + units[i];
}

export function fmtDuration(ms) {
  if (!ms || ms < 0) return "0:00";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
}

// dayBound turns a date input (local day) into an RFC 3339 instant: the
// day's start for "from", the next day's start for "to" (exclusive).
export function dayBound(value, next) {
  if (!value) return "";
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + (next ? 1 : 0)).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

export function fmtKbps(kbps) {
  if (!kbps) return "0 kbps";
  return kbps >= 1000 ? (kbps / 1000).toFixed(1) + " Mbps" : Math.round(kbps) + " kbps";
}

// waitGathering resolves when ICE gathering completes, or after timeoutMs
// with what was gathered by then.
export function waitGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(t);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() { if (pc.iceGatheringState === "complete") done(); }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Trickle sends a peer connection's ICE candidates to a WHIP/WHEP session
// with PATCH (RFC 9725 §4.3, RFC 8840 fragments), batched, with If-Match.
export class Trickle {
  constructor(pc, onError) {
    this.pc = pc;
    this.onError = onError;
    this.queue = [];
    this.ended = false;
    this.sending = false;
    this.url = "";
    this.etag = "";
    pc.addEventListener("icecandidate", (e) => {
      if (e.candidate && e.candidate.candidate) this.queue.push(e.candidate);
      else if (!e.candidate) this.ended = true;
      this.flush();
    });
  }

  // start is called with the session's URL and ETag once POST answered.
  start(url, etag) {
    this.url = url;
    this.etag = etag;
    this.flush();
  }

  async flush() {
    if (!this.url || this.sending || (!this.queue.length && !this.ended)) return;
    const cands = this.queue.splice(0);
    const end = this.ended;
    this.ended = false;
    this.sending = true;
    try {
      const resp = await fetch(this.url, {
        method: "PATCH",
        headers: authHeaders({ "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": this.etag }),
        body: sdpFragment(this.pc.localDescription.sdp, cands, end),
      });
      if (!resp.ok) this.onError(new ApiError(resp.status, await describe(resp), resp));
      else if (resp.headers.get("ETag")) this.etag = resp.headers.get("ETag");
    } catch (err) {
      this.onError(err);
    } finally {
      this.sending = false;
    }
    if (this.queue.length) this.flush();
  }
}

// sdpFragment builds an application/trickle-ice-sdpfrag body with our ICE
// credentials (unchanged: a new ufrag would mean an ICE restart) and the
// candidates, all under the first media section (max-bundle).
function sdpFragment(localSDP, cands, end) {
  const line = (prefix) => (localSDP.split(/\r?\n/).find((l) => l.startsWith(prefix)) || "");
  const mid = line("a=mid:") || "a=mid:0";
  let frag = line("a=ice-ufrag:") + "\r\n" + line("a=ice-pwd:") + "\r\n" +
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + mid + "\r\n";
  for (const c of cands) frag += "a=" + c.candidate + "\r\n";
  if (end) frag += "a=end-of-candidates\r\n";
  return frag;
}

// sessionURL resolves a Location header against the request URL.
export function sessionURL(resp, requestURL) {
  const loc = resp.headers.get("Location");
  return loc ? new URL(loc, new URL(requestURL, location.href)).href : "";
}

// deleteSession ends a WHIP/WHEP session; keepalive lets it go out while
// the page unloads.
export function deleteSession(url) {
  if (!url) return Promise.resolve();
  return fetch(url, { method: "DELETE", headers: authHeaders(), keepalive: true }).catch(() => {});
}
