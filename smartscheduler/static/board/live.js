// Shared by the board and the contractor page: the JSON API with the session, and a
// websocket stream that resumes with ?after=<last sequence> and drops duplicates by id.
"use strict";

const Live = (() => {
  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function api(path, options = {}) {
    const init = {
      method: options.method || "GET",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (options.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRFToken"] = cookie("csrftoken");
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = new Error(describe(data) || response.statusText);
      error.status = response.status;
      error.data = data;
      throw error;
    }
    return data;
  }

  function describe(data) {
    if (!data) return "";
    if (data.detail) return data.detail;
    return Object.entries(data)
      .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
      .join("; ");
  }

  // stream({path, after, onEvent, onState, known}): connects, resumes, reconnects with
  // backoff; `known` are ids the page already shows (a resume may repeat them).
  function stream({ path, after, onEvent, onState, known = [] }) {
    const seen = new Set(known);
    let last = Number(after) || 0;
    let delay = 500;
    let socket = null;
    let pausedUntil = 0;

    function connect() {
      onState("connecting");
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}${path}?after=${last}`);
      // The server accepts before it signs the socket in: the stream is live, and the
      // backoff starts over, once its replay is through (`replayed`), not at the open.
      socket.onmessage = (message) => {
        const frame = JSON.parse(message.data);
        if (frame.kind === "event") {
          const event = frame.event;
          if (seen.has(event.id)) return; // at-least-once: duplicates are dropped here
          seen.add(event.id);
          last = Math.max(last, event.sequence);
          onEvent(event);
        } else if (frame.kind === "replayed") {
          last = Math.max(last, frame.through);
          delay = 500;
          onState("live");
        } else if (frame.kind === "degraded") {
          onState("paused"); // the server's channel layer is down; the socket stays open
        } else if (frame.kind === "recovered") {
          last = Math.max(last, frame.through);
          onState("live");
        } else if (frame.kind === "error") {
          // Resuming from before the retention horizon: what we show is too old, reload.
          if (frame.code === "unknown_sequence") location.reload();
          else console.warn("stream error", frame.code, frame.message);
        }
      };
      socket.onclose = (close) => {
        if (close.code === 4401) {
          onState("signed out");
          location.href = "/login/?next=" + encodeURIComponent(location.pathname);
          return;
        }
        if (close.code === 4403) {
          onState("not allowed");
          return;
        }
        onState("reconnecting");
        // Too many sockets of this user on the server (other tabs): wait longest, not 0.5 s.
        if (close.code === 4429) delay = 10000;
        setTimeout(connect, Math.max(delay, pausedUntil - Date.now()));
        delay = Math.min(delay * 2, 10000);
      };
    }

    const keepalive = setInterval(() => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send('{"kind":"ping"}');
    }, 25000);

    connect();
    return {
      // Drop the connection and stay away for `ms` (a network blip, for the browser test);
      // the stream then reconnects with ?after= and catches up from the event log.
      drop(ms = 0) {
        pausedUntil = Date.now() + ms;
        if (socket) socket.close();
      },
      stop() {
        clearInterval(keepalive);
        if (socket) {
          socket.onclose = null;
          socket.close();
        }
      },
    };
  }

  function setState(state) {
    const badge = document.getElementById("conn");
    if (!badge) return;
    badge.textContent = state;
    badge.className = "conn conn-" + state.replace(/\s+/g, "-");
  }

  function time(iso, options = { hour: "2-digit", minute: "2-digit" }) {
    return new Date(iso).toLocaleTimeString([], options);
  }

  function localDate(offsetDays) {
    const day = new Date();
    day.setDate(day.getDate() + offsetDays);
    const pad = (n) => String(n).padStart(2, "0");
    return `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`;
  }

  // --- time zones: the board shows every time in a chosen IANA zone, with its date ----------

  const partFormats = new Map();
  function zoneParts(moment, zone) {
    let format = partFormats.get(zone);
    if (!format) {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", weekday: "short",
      });
      partFormats.set(zone, format);
    }
    const parts = {};
    for (const part of format.formatToParts(moment)) parts[part.type] = part.value;
    return {
      year: Number(parts.year), month: Number(parts.month), day: Number(parts.day),
      hour: Number(parts.hour) % 24, minute: Number(parts.minute), second: Number(parts.second),
      weekday: parts.weekday,
    };
  }

  // The zone's calendar date of an instant, "YYYY-MM-DD".
  function zoneDate(moment, zone) {
    const p = zoneParts(new Date(moment), zone);
    const pad = (n) => String(n).padStart(2, "0");
    return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
  }

  // Minutes after the zone's midnight of an instant.
  function zoneMinutes(moment, zone) {
    const p = zoneParts(new Date(moment), zone);
    return p.hour * 60 + p.minute;
  }

  // The instant at `minutes` after midnight of the zone's calendar day `date` ("YYYY-MM-DD");
  // the offset is looked up twice, so a day with a DST change still lands right.
  function zoned(date, minutes, zone) {
    const [y, m, d] = date.split("-").map(Number);
    const wall = Date.UTC(y, m - 1, d, 0, minutes);
    let guess = wall;
    for (let i = 0; i < 2; i += 1) {
      const p = zoneParts(new Date(guess), zone);
      const seen = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
      guess = wall - (seen - guess);
    }
    return new Date(guess);
  }

  function addDays(date, days) {
    const [y, m, d] = date.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
  }

  // 0 = Monday, as the API's weekdays.
  function weekday(date) {
    const [y, m, d] = date.split("-").map(Number);
    return (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
  }

  function clock(moment, zone) {
    return new Date(moment).toLocaleTimeString([], { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }

  function dayLabel(date, options = { weekday: "short", day: "numeric", month: "short" }) {
    const [y, m, d] = date.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d, 12)).toLocaleDateString([], { ...options, timeZone: "UTC" });
  }

  // "Wed 3 Dec 12:30" in the zone.
  function when(moment, zone) {
    const text = new Date(moment).toLocaleDateString([], { timeZone: zone, weekday: "short", day: "numeric", month: "short" });
    return `${text} ${clock(moment, zone)}`;
  }

  function zoneIsValid(zone) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone });
      return true;
    } catch (error) {
      return false;
    }
  }

  // Mark the nodes showing a record that just changed; CSS fades the mark out.
  function flash(nodes) {
    for (const node of nodes) {
      node.classList.remove("flash");
      void node.offsetWidth; // restart the animation when it is already running
      node.classList.add("flash");
      setTimeout(() => node.classList.remove("flash"), 4000);
    }
  }

  function mapLink(location) {
    const { lat, lng } = location;
    return `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lng}#map=17/${lat}/${lng}`;
  }

  // All pages of a list endpoint (bounded: a board shows at most `maxPages` pages of it).
  async function all(path, maxPages = 10) {
    const results = [];
    let next = path;
    for (let page = 0; next && page < maxPages; page += 1) {
      const data = await api(next);
      results.push(...data.results);
      next = data.next ? new URL(data.next, location.href).pathname + new URL(data.next, location.href).search : null;
    }
    return results;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null) node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  return {
    api, all, stream, setState, time, localDate, el, flash, mapLink,
    zoneParts, zoneDate, zoneMinutes, zoned, addDays, weekday, clock, dayLabel, when, zoneIsValid,
  };
})();
