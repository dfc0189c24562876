// The meetings page: occurrences of meeting rooms, newest first, found by
// name, participant, date and hold; each links to its meeting page.
import { apiWithToken, dayBound, el, fmtBytes, fmtDuration, fmtTime, header, show } from "/ui/reel.js";

header("/meetings");
const $ = (id) => document.getElementById(id);
const box = $("message"), rows = $("rows"), form = $("filter"), more = $("more");
const FIELDS = ["q", "participant", "from", "to", "hold"];

let cursor = "";
let loading = false;
const room = new URLSearchParams(location.search).get("meeting") || "";

// The search lives in the address, so it can be bookmarked.
{
  const q = new URLSearchParams(location.search);
  for (const k of FIELDS) if (q.get(k)) form.elements[k].value = q.get(k);
}

function query(withCursor) {
  const f = new FormData(form);
  const q = new URLSearchParams();
  for (const k of ["q", "participant", "hold"]) if (f.get(k).trim()) q.set(k, f.get(k).trim());
  if (f.get("from")) q.set("from", dayBound(f.get("from"), false));
  if (f.get("to")) q.set("to", dayBound(f.get("to"), true));
  // ?meeting= in the address keeps the list to one room: what a token
  // scoped to that meeting ("board-42/*") may list.
  if (room) q.set("meeting", room);
  q.set("limit", "50");
  if (withCursor && cursor) q.set("cursor", cursor);
  return q;
}

async function load(append) {
  if (loading) return;
  loading = true;
  try {
    const page = await (await apiWithToken("/api/v1/meetings?" + query(append))).json();
    cursor = page.next_cursor || "";
    if (!append) rows.replaceChildren();
    rows.append(...(page.meetings || []).map(row));
    $("empty").hidden = rows.children.length > 0;
    more.hidden = !cursor;
    show(box, "");
  } catch (err) {
    show(box, "error", "Cannot list the meetings: " + err.message);
    $("empty").hidden = true;
  } finally {
    loading = false;
  }
}

function row(m) {
  const hold = m.hold ? el("span", { class: "badge hold", title: `Legal hold since ${fmtTime(m.hold.since)}: ${m.hold.reason}` }, "hold") : null;
  return el("tr", { "data-id": m.id },
    el("td", {}, el("a", { href: "/meetings/" + encodeURIComponent(m.id) }, m.meeting), " ", hold,
      el("div", { class: "small muted mono" }, m.id)),
    el("td", {}, fmtTime(m.start)),
    el("td", {}, m.state === "live" ? "in progress" : fmtDuration(m.duration_ms)),
    el("td", {}, (m.participants || []).join(", ")),
    el("td", {}, `${m.recordings} · ${fmtBytes(m.bytes)}`),
    el("td", {}, el("span", { class: "badge " + (m.state === "live" ? "live" : "finished") }, m.state)));
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const f = new FormData(form);
  const q = new URLSearchParams();
  for (const k of FIELDS) if (String(f.get(k)).trim()) q.set(k, String(f.get(k)).trim());
  if (room) q.set("meeting", room);
  history.replaceState(null, "", "/meetings" + (q.toString() ? "?" + q : ""));
  cursor = "";
  load(false);
});
$("clear").addEventListener("click", () => {
  form.reset();
  history.replaceState(null, "", "/meetings" + (room ? "?meeting=" + encodeURIComponent(room) : ""));
  cursor = "";
  load(false);
});
more.addEventListener("click", () => load(true));
load(false);
