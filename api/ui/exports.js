// The meeting page's "Export as one file": the three exports of an ended
// meeting (multi-track, composite, audio) as jobs on the server, of the
// whole meeting or of the clip's range. A job waiting or running shows a
// progress bar with its ETA (polled every second) and Cancel; a finished
// one its files to download and Delete (a failed one Delete). Starting,
// cancelling and deleting need an admin token (the header's, as for the
// legal hold); reading a read token.
import { ApiError, apiWithToken, el, fmtBytes, fmtDuration, show, withToken } from "/ui/reel.js";

const KINDS = [
  ["multitrack", "Multi-track", "Every participant's original video and audio as separate tracks of one Matroska file, each named after its participant and placed on the meeting's timeline. Nothing is re-encoded: the best quality, for archiving and editing."],
  ["composite", "Composite MP4", "One ordinary MP4 anyone can play: a grid of the participants present at each moment with their names on the tiles, all audio mixed. Takes about as long as the meeting."],
  ["audio", "Audio", "For transcription: the mix (Opus in WebM and 16 kHz WAV) and one WAV per participant, all starting at the meeting's start, so who spoke when is kept."],
];
const LABEL = Object.fromEntries(KINDS.map(([kind, label]) => [kind, label]));
const FFMPEG = new Set(["composite", "audio"]); // the exports the server makes with ffmpeg
const POLL_MS = 1000;

// initExports fills the section #exports for meeting (GET
// /api/v1/meetings/{id}). clipRange() is the clip's [from, to] in seconds.
export function initExports(meeting, clipRange) {
  const $ = (id) => document.getElementById(id);
  const man = meeting.manifest, id = man.id;
  const box = $("export-message"), range = $("export-range");
  const live = man.state !== "ended";
  const timers = new Map(); // job id → its poll's timeout
  const gone = new Set(); // cancelled or deleted jobs: a late poll does not bring them back
  let noFFmpeg = false; // the server said 501: it has no ffmpeg
  const disabled = (kind) => live || (noFFmpeg && FFMPEG.has(kind));

  $("export-kinds").replaceChildren(...KINDS.map(([kind, label, what]) =>
    el("div", { class: "export", "data-kind": kind },
      el("div", { class: "export-head" },
        el("button", { type: "button", class: "primary", "data-kind": kind, disabled: live, onclick: () => start(kind) }, label),
        el("span", { class: "small muted" }, what)),
      el("div", { class: "jobs" }))));
  range.disabled = live;
  $("export-note").textContent = live
    ? "The meeting is still in progress: it can be exported once it has ended (a while after the last participant left). Reload the page then."
    : "Made on the server in the background, one after the other; the files stay with the meeting until deleted. Starting, cancelling or deleting an export needs an admin token (the Token field at the top).";
  $("exports").hidden = false;

  // rangeLabel says what part of the meeting a job covers.
  const secs = (ms) => (ms / 1000).toFixed(1).replace(/\.0$/, "") + " s";
  const rangeLabel = (j) => (j.from_ms <= 0 && j.to_ms >= man.duration_ms ? "Whole meeting" : `${secs(j.from_ms)} – ${secs(j.to_ms)}`);

  async function start(kind) {
    const body = { kind };
    if (range.value === "clip") {
      const [from, to] = clipRange();
      if (!(to > from)) {
        show(box, "warn", "The clip's range is empty: set “Clip from” before “to” above, or export the whole meeting.");
        return;
      }
      if (from > 0) body.from = from;
      if (to < man.duration_ms / 1000) body.to = to;
    }
    const button = document.querySelector(`#export-kinds button[data-kind="${kind}"]`);
    button.disabled = true;
    try {
      const resp = await apiWithToken(`/api/v1/meetings/${encodeURIComponent(id)}/exports`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const job = await resp.json();
      show(box, "", "");
      if (resp.status === 200) show(box, "info", `This ${LABEL[kind]} export was already made: its files are below.`);
      render(job);
    } catch (err) {
      show(box, "error", startError(kind, err));
      if (err instanceof ApiError && err.status === 501) {
        noFFmpeg = true;
        for (const b of document.querySelectorAll("#export-kinds button[data-kind]")) {
          if (FFMPEG.has(b.dataset.kind)) b.title = "The server has no ffmpeg, which this export needs.";
        }
      }
    } finally {
      for (const b of document.querySelectorAll("#export-kinds button[data-kind]")) b.disabled = disabled(b.dataset.kind);
    }
  }

  function startError(kind, err) {
    const what = `Cannot start the ${LABEL[kind]} export: `, why = what + err.message;
    if (!(err instanceof ApiError)) return why;
    switch (err.status) {
      case 403: return `${what}starting an export needs an admin token, and the token in the Token field at the top may read this meeting but not change it.`;
      case 409: return `${why} Reload the page once the meeting has ended.`;
    }
    return why;
  }

  // render shows a job under its kind, in place if it is there already.
  function render(job) {
    if (gone.has(job.id)) return;
    const list = document.querySelector(`#export-kinds .export[data-kind="${job.kind}"] .jobs`);
    if (!list) return;
    let row = list.querySelector(`.job[data-job="${CSS.escape(job.id)}"]`);
    if (!row) {
      row = el("div", { class: "job", "data-job": job.id });
      list.prepend(row);
    }
    row.dataset.state = job.state;
    const what = el("span", { class: "job-range small" }, rangeLabel(job));
    clearTimeout(timers.get(job.id));
    timers.delete(job.id);
    if (job.state === "queued" || job.state === "running") {
      const pct = Math.floor(job.progress || 0);
      const eta = job.eta_seconds != null ? ` · ${fmtETA(job.eta_seconds)} left` : "";
      row.replaceChildren(what,
        el("progress", { max: "100", value: job.state === "running" ? String(job.progress || 0) : undefined }),
        el("span", { class: "small job-status" }, job.state === "queued" ? "waiting for the exports before it" : `${pct}%${eta}`),
        el("button", { type: "button", class: "danger", onclick: () => drop(job, false) }, "Cancel"));
      timers.set(job.id, setTimeout(() => poll(job), POLL_MS));
      return;
    }
    if (job.state === "done") {
      row.replaceChildren(what, ...(job.files || []).map((f) => {
        const who = f.participant || (f.role === "mix" ? "mix" : "");
        return el("a", { class: "button", href: withToken(f.url), download: f.name, "data-bytes": String(f.bytes),
          title: `${f.name} · sha256 ${f.sha256}` }, `${who ? who + " " : ""}${f.format.toUpperCase()} · ${fmtBytes(f.bytes)}`);
      }));
      if (job.warning) row.append(el("span", { class: "small muted" }, job.warning));
      row.append(deleteButton(job));
      return;
    }
    row.replaceChildren(what, el("span", { class: "badge failed" }, job.state), el("span", { class: "small" }, " " + (job.error || "")), deleteButton(job));
  }

  const deleteButton = (job) => el("button", { type: "button", class: "danger", onclick: () => {
    if (confirm(`Delete the ${LABEL[job.kind]} export (${rangeLabel(job)}) and its files? This cannot be undone.`)) drop(job, true);
  } }, "Delete");

  async function poll(job) {
    timers.delete(job.id);
    if (gone.has(job.id)) return;
    try {
      render(await (await apiWithToken(job.url)).json());
    } catch (err) {
      const row = document.querySelector(`.job[data-job="${CSS.escape(job.id)}"]`);
      if (err instanceof ApiError && err.status === 404) {
        row?.remove(); // cancelled elsewhere
        return;
      }
      row?.querySelector(".job-status")?.replaceChildren("status unknown: " + err.message);
      timers.set(job.id, setTimeout(() => poll(job), 5 * POLL_MS));
    }
  }

  // drop cancels a job that waits or runs, or deletes a finished one
  // (finished: true), with its files. A held meeting's exports stay (409,
  // the server names the hold).
  async function drop(job, finished) {
    const [verb, doing] = finished ? ["delete", "deleting"] : ["cancel", "cancelling"];
    try {
      await apiWithToken(job.url, { method: "DELETE" });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) {
        const why = err instanceof ApiError && err.status === 403 ? `${doing} an export needs an admin token, and the token in the Token field at the top may read this meeting but not change it.` : err.message;
        show(box, "error", `Cannot ${verb} the ${LABEL[job.kind]} export: ${why}`);
        return;
      }
    }
    gone.add(job.id);
    clearTimeout(timers.get(job.id));
    timers.delete(job.id);
    document.querySelector(`.job[data-job="${CSS.escape(job.id)}"]`)?.remove();
    show(box, "ok", finished ? `The ${LABEL[job.kind]} export (${rangeLabel(job)}) and its files are deleted.`
      : `The ${LABEL[job.kind]} export is cancelled, and what it had written is removed.`);
  }

  // The meeting's jobs so far, finished or running.
  if (!live) {
    apiWithToken(`/api/v1/meetings/${encodeURIComponent(id)}/exports`)
      .then((r) => r.json())
      .then((list) => (list.exports || []).forEach(render))
      .catch((err) => {
        if (err instanceof ApiError && err.status === 404) $("exports").hidden = true; // a gateway without exports
        else show(box, "warn", "Cannot list this meeting's exports: " + err.message);
      });
  }
}

function fmtETA(s) {
  return s < 60 ? `${Math.max(1, Math.ceil(s))} s` : fmtDuration(s * 1000);
}
