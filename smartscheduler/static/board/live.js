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
      socket.onopen = () => {
        delay = 500;
        onState("live");
      };
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
        } else if (frame.kind === "degraded") {
          onState("paused"); // the server's channel layer is down; the socket stays open
        } else if (frame.kind === "recovered") {
          last = Math.max(last, frame.through);
          onState("live");
        } else if (frame.kind === "error") {
          console.warn("stream error", frame.code, frame.message);
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

  return { api, stream, setState, time, localDate, el };
})();
