// MP4Source plays a recording's MP4 form (?format=mp4, a remux streamed
// by the server without Range) in a <video> through Media Source
// Extensions, so that it seeks: what has arrived plays and seeks at once;
// a seek outside it asks the server for a clip from there (&from=), which
// the server starts at the keyframe at or before it and places on the
// recording's timeline with its Reel-Clip-Start header.
import { ApiError, describe, withToken } from "/ui/reel.js";

// MIME types for MediaSource by the recording's codecs. The profile in a
// codecs string only gates addSourceBuffer; the decoder is set up from
// the MP4's own avcC/hvcC.
const CODEC = { h264: "avc1.640028", h265: "hvc1.1.6.L93.B0", av1: "av01.0.08M.08", vp9: "vp09.00.10.08", opus: "opus" };

export function mp4Type(tracks) {
  const codecs = (tracks || []).map((t) => CODEC[t.codec]).filter(Boolean);
  return `video/mp4; codecs="${codecs.join(", ")}"`;
}

// The part behind the playhead that is let go when the browser's buffer
// is full, and how far ahead of the data a seek may land and still wait
// for the download in progress instead of starting a new one.
const KEEP_BEHIND = 10, AHEAD = 3;

export class MP4Source {
  constructor(video, url, type, length, onError) {
    this.video = video;
    this.url = url;
    this.type = type;
    this.length = length;
    this.onError = onError;
    this.gen = 0;
    this.from = 0; // where the download in progress started
    this.loading = false;
    this.complete = false; // the recording's end has arrived
    this.ms = new MediaSource();
    this.ready = new Promise((resolve) => this.ms.addEventListener("sourceopen", resolve, { once: true }));
    video.src = URL.createObjectURL(this.ms);
    this.ready.then(() => {
      this.ms.duration = length;
      this.sb = this.ms.addSourceBuffer(type);
      this.load(0, false);
    }).catch((err) => onError(err));
  }

  // has reports whether t (seconds of the recording) has arrived.
  has(t) {
    const b = this.sb?.buffered;
    for (let i = 0; b && i < b.length; i++) if (t >= b.start(i) && t <= b.end(i) - 0.05) return true;
    return false;
  }

  end() {
    const b = this.sb?.buffered;
    return b && b.length ? b.end(b.length - 1) : 0;
  }

  // ensure makes sure that t will arrive: it has, or the download in
  // progress is about to bring it; else a clip from t is asked for.
  ensure(t) {
    if (!this.sb || this.has(t)) return;
    if (this.loading && t >= this.from && t <= this.end() + AHEAD) return;
    if (this.complete && t >= this.end() - 0.05) return;
    this.load(t, false);
  }

  // keepUp continues a download the server cut short (a write timeout
  // while the browser's buffer was full) when the playhead nears its end.
  keepUp(t) {
    if (this.sb && !this.loading && !this.complete && t > this.end() - AHEAD) this.load(this.end(), true);
  }

  async idle() {
    while (this.sb.updating) await new Promise((r) => this.sb.addEventListener("updateend", r, { once: true }));
  }

  async load(from, keep) {
    const gen = ++this.gen;
    this.abort?.abort();
    const ac = (this.abort = new AbortController());
    this.from = from;
    this.loading = true;
    this.complete = false;
    try {
      await this.idle();
      if (!keep && this.sb.buffered.length) {
        this.sb.remove(0, Infinity);
        await this.idle();
      }
      const url = from > 0 ? `${this.url}&from=${from.toFixed(3)}` : this.url;
      const resp = await fetch(withToken(url), { signal: ac.signal });
      if (!resp.ok) throw new ApiError(resp.status, await describe(resp), resp);
      if (gen !== this.gen) return;
      this.sb.timestampOffset = Number(resp.headers.get("Reel-Clip-Start")) || 0;
      const reader = resp.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done || gen !== this.gen) break;
        await this.append(value, gen);
      }
      if (gen === this.gen) {
        this.complete = true;
        await this.idle();
        if (this.ms.readyState === "open") this.ms.endOfStream();
      }
    } catch (err) {
      if (err.name !== "AbortError" && gen === this.gen) {
        if (err instanceof ApiError) this.onError(err);
        else console.warn("the recording's download stopped early; it goes on from where it stopped when needed:", err.message);
      }
    } finally {
      if (gen === this.gen) this.loading = false;
    }
  }

  // append adds data; when the browser's buffer is full it lets go of
  // what lies well behind the playhead, or waits for the playhead.
  async append(data, gen) {
    for (;;) {
      await this.idle();
      if (gen !== this.gen) return;
      try {
        this.sb.appendBuffer(data);
        return;
      } catch (err) {
        if (err.name !== "QuotaExceededError") throw err;
        const behind = this.video.currentTime - KEEP_BEHIND;
        if (behind > 0 && this.sb.buffered.length && this.sb.buffered.start(0) < behind) {
          this.sb.remove(0, behind);
        } else {
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    }
  }
}
