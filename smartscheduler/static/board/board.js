// The dispatcher board: a timeline per contractor of the chosen day or week (booked slots, in a
// chosen time zone), the tray of unassigned jobs, a job's actions (recommend and book,
// reschedule by dragging or from the contractor's availability, cancel, start, complete, rate)
// and the event log. Every change, from anyone, arrives over the websocket and is highlighted.
"use strict";

(() => {
  const L = Live;
  const { api, el } = L;
  const root = document.getElementById("board");
  const $ = (id) => document.getElementById(id);

  const STATUS_LABELS = { open: "Open", assigned: "Assigned", in_progress: "In progress", completed: "Completed", cancelled: "Cancelled" };
  const DAY_HOURS = [7, 19]; // shown at least; widened to fit what is booked
  const SNAP = 15; // minutes: the availability grid

  const jobs = new Map(); // id -> job, everything this page has read
  const contractors = new Map();
  const ratings = new Map(); // jobId -> stars given on this page or seen in the log
  const regions = [];
  const params = new URLSearchParams(location.search);
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const state = {
    view: params.get("view") === "week" ? "week" : "day",
    zone: L.zoneIsValid(params.get("tz") || "") ? params.get("tz") : localStorage.getItem("board.tz") || browserZone,
    date: /^\d{4}-\d{2}-\d{2}$/.test(params.get("date") || "") ? params.get("date") : null,
    selected: null, // job id shown in the details card
    recsJob: null, // job id whose recommendations are shown
    booking: new Set(), // job ids this page is changing right now (their events are ours)
  };
  if (!L.zoneIsValid(state.zone)) state.zone = "UTC";
  if (!state.date) state.date = L.zoneDate(new Date(), state.zone);

  // --- the displayed range --------------------------------------------------------------------

  function days() {
    if (state.view === "day") return [state.date];
    const monday = L.addDays(state.date, -L.weekday(state.date));
    return Array.from({ length: 7 }, (_, i) => L.addDays(monday, i));
  }

  function range() {
    const list = days();
    return { from: L.zoned(list[0], 0, state.zone), to: L.zoned(L.addDays(list[list.length - 1], 1), 0, state.zone) };
  }

  function slotOf(job) {
    return job.assignment ? job.assignment.scheduledTimeSlot : null;
  }

  function onTimeline(job) {
    const slot = slotOf(job);
    if (!slot || job.status === "cancelled") return false;
    const { from, to } = range();
    return new Date(slot.end) > from && new Date(slot.start) < to;
  }

  // Every open job, whatever day it is wanted (overdue ones too), unless narrowed to the shown days.
  function inTray(job) {
    if (job.status !== "open") return false;
    return !$("tray-shown").checked || days().includes(job.desiredDate);
  }

  // --- filters --------------------------------------------------------------------------------

  function filters() {
    return {
      region: $("f-region").value,
      type: $("f-type").value,
      status: $("f-status").value,
      search: $("f-search").value.trim().toLowerCase(),
      bookedOnly: $("f-booked").checked,
    };
  }

  function contractorName(id) {
    const contractor = contractors.get(id);
    return contractor ? contractor.name : `Contractor ${id}`;
  }

  function jobMatches(job, f = filters()) {
    if (f.region && job.region !== f.region) return false;
    if (f.type && job.type !== f.type) return false;
    if (f.status && job.status !== f.status) return false;
    if (f.search) {
      const text = [`#${job.id}`, job.type, job.location.address, job.region, job.priority,
        job.assignment ? contractorName(job.assignment.contractorId) : ""].join(" ").toLowerCase();
      if (!text.includes(f.search)) return false;
    }
    return true;
  }

  function contractorShown(contractor, f, booked) {
    if (booked.has(contractor.id)) return true; // its bookings are on screen: keep the row
    if (f.region && contractor.region !== f.region) return false;
    if (f.type && contractor.type !== f.type && contractor.type !== "multi") return false;
    if (f.search) return contractor.name.toLowerCase().includes(f.search);
    if (f.bookedOnly) return false;
    return contractor.status === "active";
  }

  function jobsShown() {
    const f = filters();
    return [...jobs.values()].filter((job) => onTimeline(job) && jobMatches(job, f));
  }

  // --- rendering: the timeline ----------------------------------------------------------------

  function hours(shown) {
    let [first, last] = DAY_HOURS;
    for (const job of shown) {
      const slot = slotOf(job);
      const startDay = L.zoneDate(slot.start, state.zone);
      const endDay = L.zoneDate(new Date(new Date(slot.end) - 1), state.zone);
      if (startDay !== endDay) return [0, 24];
      first = Math.min(first, Math.floor(L.zoneMinutes(slot.start, state.zone) / 60));
      last = Math.max(last, Math.ceil((L.zoneMinutes(new Date(new Date(slot.end) - 1), state.zone) + 1) / 60));
    }
    return [first, Math.min(24, last)];
  }

  // Geometry of the track: each day is a segment of the visible hours.
  function geometry(shown) {
    const list = days();
    const [first, last] = hours(shown);
    const segments = list.map((date) => ({ date, start: L.zoned(date, first * 60, state.zone), end: L.zoned(date, last * 60, state.zone) }));
    return { first, last, segments, span: (last - first) * 60 };
  }

  // Fraction (0..1) along the track of an instant, clipped to the segment it falls in.
  function position(moment, geo) {
    const t = new Date(moment).getTime();
    const n = geo.segments.length;
    for (let i = 0; i < n; i += 1) {
      const seg = geo.segments[i];
      if (t < seg.start.getTime()) return i / n;
      if (t <= seg.end.getTime()) return (i + (t - seg.start) / (seg.end - seg.start)) / n;
    }
    return 1;
  }

  // The instant at a fraction along the track, snapped to the availability grid.
  function instantAt(fraction, geo) {
    const n = geo.segments.length;
    const clamped = Math.min(Math.max(fraction, 0), 0.99999);
    const index = Math.floor(clamped * n);
    const within = clamped * n - index;
    const minutes = geo.first * 60 + Math.round((within * geo.span) / SNAP) * SNAP;
    return L.zoned(geo.segments[index].date, minutes, state.zone);
  }

  function place(node, start, end, geo) {
    const left = position(start, geo);
    const right = position(end, geo);
    node.style.left = `${(left * 100).toFixed(3)}%`;
    node.style.width = `${Math.max((right - left) * 100, 0.4).toFixed(3)}%`;
    return right > left;
  }

  function renderHeader(geo) {
    const track = el("div", { class: "track header-track", "aria-hidden": "true" });
    const n = geo.segments.length;
    geo.segments.forEach((seg, i) => {
      const day = el("div", { class: "day-label" }, L.dayLabel(seg.date));
      day.style.left = `${(i / n) * 100}%`;
      day.style.width = `${100 / n}%`;
      if (n > 1) track.append(day);
      const step = n > 1 ? 6 : 1;
      for (let h = geo.first; h < geo.last; h += 1) {
        if ((h - geo.first) % step && n > 1) continue;
        if (h === geo.first && n === 1) continue; // the row's edge says where the day starts
        const tick = el("div", { class: `tick ${n > 1 ? "tick-week" : ""}` }, `${String(h).padStart(2, "0")}:00`);
        tick.style.left = `${((i + (h - geo.first) / (geo.last - geo.first)) / n) * 100}%`;
        track.append(tick);
      }
    });
    return el("div", { class: "row header" }, el("div", { class: "who muted small" }, "Contractor"), track);
  }

  // Working hours (in the contractor's zone) and time off, shaded on its row.
  function shading(contractor, geo) {
    const nodes = [];
    const zone = L.zoneIsValid(contractor.timezone) ? contractor.timezone : "UTC";
    const list = days();
    const dates = [L.addDays(list[0], -1), ...list, L.addDays(list[list.length - 1], 1)];
    for (const date of dates) {
      for (const window of contractor.workingHours || []) {
        if (window.weekday !== L.weekday(date)) continue;
        const [sh, sm] = window.start.split(":").map(Number);
        const [eh, em] = window.end.split(":").map(Number);
        const start = L.zoned(date, sh * 60 + sm, zone);
        const end = L.zoned(date, eh * 60 + em, zone);
        for (const seg of geo.segments) {
          const s = new Date(Math.max(start, seg.start));
          const e = new Date(Math.min(end, seg.end));
          if (e > s) {
            const band = el("div", { class: "work" });
            place(band, s, e, geo);
            nodes.push(band);
          }
        }
      }
    }
    for (const off of contractor.timeOff || []) {
      for (const seg of geo.segments) {
        const s = new Date(Math.max(new Date(off.start), seg.start));
        const e = new Date(Math.min(new Date(off.end), seg.end));
        if (e > s) {
          const band = el("div", { class: "off", title: `Time off${off.reason ? ": " + off.reason : ""}` });
          place(band, s, e, geo);
          nodes.push(band);
        }
      }
    }
    return nodes;
  }

  function barLabel(job) {
    const slot = slotOf(job);
    return `#${job.id} ${job.type}, ${L.when(slot.start, state.zone)} to ${L.clock(slot.end, state.zone)}, ${STATUS_LABELS[job.status]}, ${job.location.address || job.region}`;
  }

  function bar(job, geo) {
    const slot = slotOf(job);
    const node = el(
      "button",
      {
        type: "button",
        class: `bar status-${job.status} priority-${job.priority}${state.selected === job.id ? " selected" : ""}`,
        "data-job-id": job.id,
        "data-status": job.status,
        "data-start": slot.start,
        "aria-label": barLabel(job),
        title: barLabel(job),
        onclick: () => {
          if (Date.now() > suppressClickUntil) select(job.id);
        },
      },
      el("strong", {}, `#${job.id}`, el("span", { class: "bar-type" }, ` ${job.type}`)),
      el("span", { class: "bar-time" }, `${L.clock(slot.start, state.zone)}–${L.clock(slot.end, state.zone)}`),
    );
    place(node, slot.start, slot.end, geo);
    if (job.status === "assigned") {
      node.classList.add("draggable");
      node.addEventListener("pointerdown", (event) => dragStart(event, job, node));
    }
    return node;
  }

  let geo = null;
  let drag = null;
  let suppressClickUntil = 0;
  let renderWaiting = false;

  function renderTimeline() {
    if (drag) {
      renderWaiting = true; // not under the pointer of a dispatcher who is dragging
      return;
    }
    renderWaiting = false;
    const shown = jobsShown();
    geo = geometry(shown);
    const f = filters();
    const booked = new Set(shown.map((job) => job.assignment.contractorId));
    const rows = [...contractors.values()]
      .filter((c) => contractorShown(c, f, booked))
      .sort((a, b) => a.name.localeCompare(b.name));
    const timeline = $("timeline");
    timeline.classList.toggle("week", state.view === "week");
    const body = rows.map((contractor) => {
      const track = el("div", { class: "track", "data-contractor-id": contractor.id },
        shading(contractor, geo),
        shown.filter((job) => job.assignment.contractorId === contractor.id).map((job) => bar(job, geo)));
      return el(
        "div",
        { class: `row status-${contractor.status}`, "data-contractor-id": contractor.id, role: "group", "aria-label": contractor.name },
        el("div", { class: "who" },
          el("span", { class: "name" }, contractor.name),
          el("span", { class: "muted small" }, `${contractor.type} · ${contractor.region} · `,
            el("span", { class: "rating", "data-rating": contractor.averageRating ?? "" },
              contractor.averageRating === null ? "unrated" : `★ ${contractor.averageRating.toFixed(2)} (${contractor.ratingCount})`))),
        track,
      );
    });
    const list = days();
    $("range-title").textContent = state.view === "day"
      ? `${L.dayLabel(list[0], { weekday: "long", day: "numeric", month: "long", year: "numeric" })} · ${state.zone}`
      : `Week of ${L.dayLabel(list[0], { day: "numeric", month: "long", year: "numeric" })} · ${state.zone}`;
    timeline.replaceChildren(
      renderHeader(geo),
      ...(body.length ? body : [el("p", { class: "hint" }, "No contractor matches the filters.")]),
    );
    const now = Date.now();
    const nowTrack = position(now, geo);
    if (geo.segments.some((seg) => now > seg.start.getTime() && now < seg.end.getTime())) {
      for (const track of timeline.querySelectorAll(".row:not(.header) .track")) {
        const line = el("div", { class: "now", "aria-hidden": "true" });
        line.style.left = `${nowTrack * 100}%`;
        track.append(line);
      }
    }
  }

  // --- rendering: the tray and the details card -----------------------------------------------

  function trayItem(job) {
    const overdue = job.desiredDate < L.zoneDate(new Date(), state.zone);
    return el(
      "li",
      { "data-job-id": job.id, "data-status": job.status, class: `priority-${job.priority}${state.selected === job.id ? " selected" : ""}` },
      el("article", { class: "tray-job", "data-job-id": job.id, "data-status": job.status },
        el("button", { type: "button", class: "linkish", onclick: () => select(job.id), "aria-label": `Job #${job.id} ${job.type}, wanted ${job.desiredDate}, ${job.priority} priority` },
          el("strong", {}, `#${job.id} ${job.type}`), ` · ${job.durationMinutes} min`),
        el("span", { class: `pill pill-${job.priority}` }, job.priority),
        el("div", { class: "muted small" },
          overdue ? el("strong", { class: "error" }, "overdue · ") : null,
          `wanted ${L.dayLabel(job.desiredDate)} · ${job.region}${job.location.address ? " · " + job.location.address : ""}`),
        el("button", { type: "button", class: "ghost small-button", "aria-label": `Recommend contractors for job #${job.id}`, onclick: () => select(job.id) }, "Recommend")),
    );
  }

  function renderTray() {
    const f = filters();
    const list = [...jobs.values()].filter((job) => inTray(job) && jobMatches(job, f));
    const rank = { urgent: 0, high: 1, normal: 2, low: 3 };
    list.sort((a, b) => a.desiredDate.localeCompare(b.desiredDate) || rank[a.priority] - rank[b.priority] || a.id - b.id);
    $("tray-count").textContent = String(list.length);
    $("tray-list").replaceChildren(...(list.length ? list.map(trayItem) : [el("li", { class: "muted" }, "Nothing waiting.")]));
  }

  function render() {
    renderTimeline();
    renderTray();
    renderDetails();
  }

  function fact(term, ...value) {
    return [el("dt", {}, term), el("dd", {}, ...value)];
  }

  function renderDetails() {
    const card = $("details");
    const job = jobs.get(state.selected);
    if (!job) {
      card.hidden = true;
      return;
    }
    card.hidden = false;
    card.dataset.jobId = job.id;
    card.dataset.status = job.status;
    $("details-title").textContent = `Job #${job.id} · ${job.type}`;
    const slot = slotOf(job);
    const facts = el("dl", { class: "facts" },
      fact("Status", el("span", { class: `badge status-${job.status}`, id: "details-status" }, STATUS_LABELS[job.status])),
      fact("Priority", job.priority),
      fact("Wanted", L.dayLabel(job.desiredDate), ` · ${job.durationMinutes} min`),
      fact("Where", job.location.address || `${job.location.lat}, ${job.location.lng}`, " ",
        el("a", { href: L.mapLink(job.location), target: "_blank", rel: "noopener noreferrer" }, "map")),
      fact("Region", job.region),
      job.requiredSkills.length ? fact("Skills", job.requiredSkills.join(", ")) : null,
      slot ? fact("Booked", el("span", { id: "details-slot" }, `${contractorName(job.assignment.contractorId)} · ${L.when(slot.start, state.zone)}–${L.clock(slot.end, state.zone)}`)) : null,
      job.status === "cancelled" ? fact("Cancelled", job.cancelReason || "no reason given") : null,
      ratings.has(job.id) ? fact("Rating", `${"★".repeat(ratings.get(job.id))}${"☆".repeat(5 - ratings.get(job.id))}`) : null,
    );
    $("details-body").replaceChildren(facts, actions(job));
  }

  function actions(job) {
    const box = el("div", { class: "actions-box" });
    const buttons = el("div", { class: "actions" });
    box.append(buttons);
    if (job.status === "open") {
      buttons.append(el("button", { type: "button", id: "act-recommend", onclick: () => showRecommendations(job.id) }, "Recommend"));
    }
    if (job.status === "assigned") {
      buttons.append(
        el("button", { type: "button", id: "act-start", onclick: () => act(job.id, "start", {}, "started") }, "Start"),
        el("button", { type: "button", id: "act-reschedule", class: "ghost", onclick: () => reschedulePicker(job, box) }, "Reschedule…"),
      );
    }
    if (job.status === "open" || job.status === "assigned") {
      buttons.append(el("button", { type: "button", id: "act-cancel", class: "danger", onclick: () => cancelForm(job, box) }, "Cancel…"));
    }
    if (job.status === "in_progress") {
      const notes = el("textarea", { id: "complete-notes", rows: "2", maxlength: "2000" });
      box.append(el("label", { class: "stack" }, "Completion notes (optional)", notes));
      buttons.append(el("button", { type: "button", id: "act-complete", onclick: () => act(job.id, "complete", notes.value.trim() ? { notes: notes.value.trim() } : {}, "completed") }, "Complete"));
    }
    if (job.status === "completed") {
      const stars = el("div", { class: "stars", role: "group", "aria-label": "Rate the work" });
      for (let n = 1; n <= 5; n += 1) {
        stars.append(el("button", {
          type: "button", class: `star${ratings.get(job.id) >= n ? " on" : ""}`, "data-stars": n,
          "aria-label": `${n} star${n > 1 ? "s" : ""}`, "aria-pressed": String(ratings.get(job.id) === n),
          onclick: () => rate(job.id, n),
        }, "★"));
      }
      box.append(el("p", { class: "stack" }, `Rate ${contractorName(job.assignment.contractorId)}'s work:`), stars);
    }
    return box;
  }

  function cancelForm(job, box) {
    const reason = el("input", { id: "cancel-reason", maxlength: "500", placeholder: "e.g. customer away" });
    const form = el("form", { class: "inline-form", id: "cancel-form" },
      el("label", { class: "stack" }, "Reason", reason),
      el("div", { class: "actions" },
        el("button", { type: "submit", class: "danger", id: "cancel-confirm" }, "Cancel job"),
        el("button", { type: "button", class: "ghost", onclick: () => renderDetails() }, "Keep it")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(job.id, "cancel", { reason: reason.value.trim() }, "cancelled");
    });
    box.querySelector(".inline-form")?.remove();
    box.append(form);
    reason.focus();
  }

  // Free start times of a contractor around the booked day, to move the booking there.
  async function reschedulePicker(job, box) {
    const current = job.assignment.contractorId;
    const who = el("select", { id: "move-contractor" },
      [...contractors.values()]
        .filter((c) => c.status === "active" && (c.type === job.type || c.type === "multi"))
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((c) => el("option", { value: c.id, ...(c.id === current ? { selected: "selected" } : {}) }, c.name)));
    const from = el("input", { type: "date", id: "move-from", value: L.zoneDate(job.assignment.scheduledTimeSlot.start, state.zone) });
    const slots = el("div", { class: "slots", id: "move-slots", "aria-live": "polite" });
    const form = el("div", { class: "inline-form", id: "reschedule-form" },
      el("div", { class: "form-row" }, el("label", { class: "stack" }, "Contractor", who), el("label", { class: "stack" }, "From", from)),
      slots,
      el("button", { type: "button", class: "ghost", onclick: () => renderDetails() }, "Close"));
    // Only the newest look-up's answer is shown: one for the contractor chosen before, answering
    // late, must not put that contractor's times under this one's name.
    let newest = 0;
    async function load() {
      const lookup = ++newest;
      slots.replaceChildren(el("span", { class: "muted" }, "Looking up free times…"));
      const contractorId = Number(who.value);
      slots.dataset.contractorId = "";
      try {
        const query = new URLSearchParams({ from: from.value, to: L.addDays(from.value, 2), duration: job.durationMinutes });
        const data = await api(`/api/contractors/${contractorId}/availability?${query}`);
        if (lookup !== newest) return;
        const choices = data.slots.filter((slot) => new Date(slot.start) > new Date()).slice(0, 24);
        slots.replaceChildren(...(choices.length
          ? choices.map((slot) => el("button", {
            type: "button", class: "slot", "data-start": slot.start,
            onclick: () => move(job, contractorId, slot.start, slot.end),
          }, L.when(slot.start, state.zone)))
          : [el("span", { class: "muted" }, "No free time in these three days.")]));
        slots.dataset.contractorId = contractorId;
      } catch (error) {
        if (lookup !== newest) return;
        slots.replaceChildren(el("span", { class: "error" }, `Could not read availability: ${error.message}`));
      }
    }
    who.addEventListener("change", load);
    from.addEventListener("change", load);
    box.querySelector(".inline-form")?.remove();
    box.append(form);
    who.focus();
    await load();
  }

  // --- actions ----------------------------------------------------------------------------------

  function showAlert(text) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
  }

  function announce(text) {
    $("announce").textContent = text;
  }

  function describeError(error) {
    if (error.status === 409) return `Conflict: ${error.message}`;
    if (error.status === 400) return `Not accepted: ${error.message}`;
    return error.message;
  }

  // Runs a change of ours; its events, arriving around the answer, are not news from others.
  async function mine(jobId, work) {
    state.booking.add(jobId);
    try {
      const result = await work();
      setTimeout(() => state.booking.delete(jobId), 3000);
      return result;
    } catch (error) {
      state.booking.delete(jobId); // refused: whatever happens to the job next is someone else's
      throw error;
    }
  }

  async function act(jobId, verb, body, done) {
    try {
      await mine(jobId, () => api(`/api/jobs/${jobId}/${verb}`, { method: "POST", body }));
      announce(`Job #${jobId} ${done}.`);
      $("alert").hidden = true;
    } catch (error) {
      showAlert(`Job #${jobId} not ${done}: ${describeError(error)}`);
    }
    await refreshJob(jobId);
  }

  async function move(job, contractorId, start, end) {
    const body = { start, end };
    if (contractorId !== job.assignment.contractorId) body.contractorId = contractorId;
    try {
      await mine(job.id, () => api(`/api/jobs/${job.id}/reschedule`, { method: "POST", body }));
      announce(`Job #${job.id} moved to ${contractorName(contractorId)} at ${L.when(start, state.zone)}.`);
      $("alert").hidden = true;
    } catch (error) {
      showAlert(`Job #${job.id} not moved: ${describeError(error)}`);
    }
    await refreshJob(job.id);
  }

  async function rate(jobId, stars) {
    try {
      const result = await mine(jobId, () => api(`/api/jobs/${jobId}/rating`, { method: "PUT", body: { rating: stars } }));
      ratings.set(jobId, result.rating);
      announce(`Job #${jobId} rated ${stars} of 5.`);
      $("alert").hidden = true;
    } catch (error) {
      showAlert(`Job #${jobId} not rated: ${describeError(error)}`);
    }
    renderDetails();
  }

  function select(jobId) {
    state.selected = jobId;
    render();
    const job = jobs.get(jobId);
    if (job && job.status === "open") showRecommendations(jobId);
    else hideRecommendations();
    $("details").focus();
  }

  // --- recommendations --------------------------------------------------------------------------

  function hideRecommendations() {
    state.recsJob = null;
    $("recs").hidden = true;
  }

  async function showRecommendations(jobId, note = "") {
    const panel = $("recs");
    const again = !panel.hidden && state.recsJob === jobId; // a re-rank: highlight the change
    state.recsJob = jobId;
    panel.hidden = false;
    panel.dataset.jobId = jobId;
    $("recs-job").textContent = `job #${jobId}`;
    const hint = $("recs-hint");
    const list = $("recs-list");
    hint.textContent = note || "Ranking…";
    const job = jobs.get(jobId);
    if (job && job.status !== "open") {
      // Taken (or closed) meanwhile: the old ranking is stale, nothing here can be booked.
      list.replaceChildren();
      const slot = slotOf(job);
      const status = STATUS_LABELS[job.status].toLowerCase();
      const now = slot ? `${status}: ${contractorName(job.assignment.contractorId)}, ${L.when(slot.start, state.zone)}` : status;
      hint.textContent = `${note ? note + " " : ""}Now ${now}; nothing to book here.`;
      return;
    }
    try {
      const data = await api(`/api/jobs/${jobId}/recommendations?limit=5`);
      if (state.recsJob !== jobId) return;
      const live = "Live: re-ranked when ratings, schedules or bookings change.";
      hint.textContent = data.recommendations.length
        ? (note ? `${note} ${live}` : live)
        : "No contractor can take this job in the next 14 days.";
      list.replaceChildren(
        ...data.recommendations.map((rec) =>
          el("li", { "data-contractor-id": rec.contractorId },
            el("strong", {}, rec.contractorName), ` · score ${rec.score.toFixed(3)} · ${rec.distanceMiles} mi`,
            el("p", { class: "muted small" }, rec.explanation),
            el("div", { class: "slots" },
              rec.slots.map((slot) =>
                el("button", {
                  type: "button", class: "slot book", "data-start": slot.start,
                  "aria-label": `Book ${rec.contractorName} ${L.when(slot.start, state.zone)}`,
                  onclick: () => assign(jobId, rec.contractorId, slot),
                }, `Book ${L.when(slot.start, state.zone)}`))))),
      );
      if (again) L.flash([list]);
    } catch (error) {
      if (state.recsJob !== jobId) return;
      list.replaceChildren();
      hint.textContent = error.status === 409 ? `${note || ""} ${error.message}`.trim() : `Could not rank: ${error.message}`;
    }
  }

  async function assign(jobId, contractorId, slot) {
    try {
      await mine(jobId, () => api(`/api/jobs/${jobId}/assign`, { method: "POST", body: { contractorId, start: slot.start, end: slot.end } }));
      state.recsJob = null; // done with: later news about the job is not about this list
      $("recs-list").replaceChildren();
      $("recs-hint").textContent = `Booked job #${jobId}.`;
      $("alert").hidden = true;
      announce(`Job #${jobId} booked with ${contractorName(contractorId)} at ${L.when(slot.start, state.zone)}.`);
      await refreshJob(jobId);
      // Show the day it landed on, so the dispatcher sees the booking.
      if (!onTimeline(jobs.get(jobId))) goTo(L.zoneDate(slot.start, state.zone));
    } catch (error) {
      showAlert(`Job #${jobId} not booked: ${describeError(error)}`);
      await refreshJob(jobId);
      if (error.status === 409 || error.status === 400) showRecommendations(jobId, "Refreshed after the conflict.");
    }
  }

  // --- dragging a booking -----------------------------------------------------------------------

  function dragStart(event, job, node) {
    if (event.button !== 0) return;
    const track = node.parentElement;
    drag = { job, node, track, x: event.clientX, y: event.clientY, moved: false, pointer: event.pointerId, target: track };
    node.setPointerCapture(event.pointerId);
  }

  function trackUnder(x, y) {
    for (const track of $("timeline").querySelectorAll(".row:not(.header) .track")) {
      const box = track.getBoundingClientRect();
      if (y >= box.top && y < box.bottom && x >= box.left - 40 && x <= box.right + 40) return track;
    }
    return null;
  }

  // Where the dragged bar's left edge would land: contractor row and snapped start.
  function dropPoint(event) {
    const { job, track } = drag;
    const box = track.getBoundingClientRect();
    const slot = slotOf(job);
    const startFraction = position(slot.start, geo) + (event.clientX - drag.x) / box.width;
    const start = instantAt(startFraction, geo);
    const end = new Date(start.getTime() + (new Date(slot.end) - new Date(slot.start)));
    const target = trackUnder(event.clientX, event.clientY) || track;
    return { start, end, contractorId: Number(target.dataset.contractorId), target };
  }

  document.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.pointer) return;
    const dx = event.clientX - drag.x;
    const dy = event.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 5) return;
    drag.moved = true;
    const point = dropPoint(event);
    drag.node.classList.add("dragging");
    drag.node.style.transform = `translate(${dx}px, ${dy}px)`;
    drag.node.dataset.drop = point.start.toISOString();
    drag.node.querySelector(".bar-time").textContent = `→ ${L.when(point.start, state.zone)}`;
    for (const track of $("timeline").querySelectorAll(".track.drop-target")) track.classList.remove("drop-target");
    point.target.classList.add("drop-target");
  });

  function dragEnd(event, cancelled) {
    if (!drag || event.pointerId !== drag.pointer) return;
    const current = drag;
    const point = current.moved && !cancelled ? dropPoint(event) : null;
    drag = null;
    for (const track of $("timeline").querySelectorAll(".track.drop-target")) track.classList.remove("drop-target");
    if (!current.moved) {
      if (renderWaiting) setTimeout(renderTimeline, 0); // after the click has selected the job
      return; // a click: the button's own handler selects the job
    }
    suppressClickUntil = Date.now() + 300; // a drag is not a click
    if (!point) return renderTimeline();
    const slot = slotOf(current.job);
    if (point.start.toISOString() === new Date(slot.start).toISOString() && point.contractorId === current.job.assignment.contractorId) {
      return renderTimeline();
    }
    current.node.classList.add("pending");
    move(current.job, point.contractorId, point.start.toISOString(), point.end.toISOString());
  }

  document.addEventListener("pointerup", (event) => dragEnd(event, false));
  document.addEventListener("pointercancel", (event) => dragEnd(event, true));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && drag) {
      drag.node.releasePointerCapture(drag.pointer);
      drag = null;
      suppressClickUntil = Date.now() + 300;
      renderTimeline();
    }
  });

  // --- the event log and live updates -----------------------------------------------------------

  function summary(event) {
    const p = event.payload;
    const at = (slot) => (slot ? L.when(slot.start, state.zone) : "");
    switch (event.type) {
      case "JobCreated": return `job #${p.jobId} created (${p.type}, wanted ${p.desiredDate})`;
      case "JobUpdated": return `job #${p.jobId} edited (${(p.updatedFields || []).join(", ")})`;
      case "JobAssigned": return `job #${p.jobId} booked: ${contractorName(p.contractorId)}, ${at(p.scheduledTimeSlot)}`;
      case "JobRescheduled": return `job #${p.jobId} moved to ${contractorName(p.contractorId)}, ${at(p.scheduledTimeSlot)}`;
      case "JobCancelled": return `job #${p.jobId} cancelled${p.reason ? ": " + p.reason : ""}`;
      case "JobStarted": return `job #${p.jobId} started by ${contractorName(p.contractorId)}`;
      case "JobCompleted": return `job #${p.jobId} completed by ${contractorName(p.contractorId)}`;
      case "ScheduleUpdated": return `${contractorName(p.contractorId)}: ${(p.updatedFields || []).join(", ")} changed`;
      case "ContractorRated": return p.rating === null ? `job #${p.jobId} rating moved off ${contractorName(p.contractorId)}` : `${contractorName(p.contractorId)} rated ${p.rating}★ for job #${p.jobId}`;
      case "RecommendationsUpdated": return `recommendations for job #${p.jobId} re-ranked (${p.reason})`;
      default: return event.type;
    }
  }

  function addToFeed(event) {
    const feed = $("feed");
    feed.prepend(
      el("li", { "data-sequence": event.sequence, "data-type": event.type },
        el("span", { class: "muted" }, `#${event.sequence} ${new Date(event.occurredAt).toLocaleTimeString([], { timeZone: state.zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" })} `),
        summary(event)),
    );
    while (feed.children.length > 60) feed.lastElementChild.remove();
  }

  function highlight(jobId) {
    L.flash(document.querySelectorAll(`[data-job-id="${jobId}"]`));
  }

  async function refreshJob(id) {
    try {
      jobs.set(id, await api(`/api/jobs/${id}`));
    } catch (error) {
      if (error.status === 404) jobs.delete(id);
      else throw error;
    }
    render();
  }

  async function refreshContractor(id) {
    try {
      contractors.set(id, await api(`/api/contractors/${id}`));
    } catch (error) {
      if (error.status === 404) contractors.delete(id);
      else throw error;
    }
    renderTimeline();
  }

  async function onEvent(event) {
    addToFeed(event);
    const p = event.payload;
    const jobId = p.jobId;
    const jobEvent = jobId !== undefined && !["ContractorRated", "RecommendationsUpdated"].includes(event.type);
    if (event.type === "ContractorRated" && p.rating !== null) ratings.set(jobId, p.rating);
    if (jobEvent) {
      const before = jobs.get(jobId);
      await refreshJob(jobId);
      highlight(jobId);
      if (!state.booking.has(jobId)) {
        const text = summary(event);
        announce(text.charAt(0).toUpperCase() + text.slice(1));
        // Someone else took (or cancelled) the job whose recommendations are on screen.
        if (state.recsJob === jobId && ["JobAssigned", "JobCancelled"].includes(event.type)) {
          showRecommendations(jobId, `Job #${jobId} was just ${event.type === "JobAssigned" ? "booked" : "cancelled"} by someone else.`);
        }
        if (before && state.selected === jobId) L.flash([$("details")]);
      }
    }
    if (["ScheduleUpdated", "ContractorRated", "JobCompleted"].includes(event.type) && p.contractorId) {
      await refreshContractor(p.contractorId);
      if (event.type === "ContractorRated") L.flash(document.querySelectorAll(`.row[data-contractor-id="${p.contractorId}"] .who`));
      if (state.selected === jobId) renderDetails();
    }
    if (event.type === "RecommendationsUpdated" && state.recsJob === jobId) {
      showRecommendations(jobId);
    }
  }

  // --- navigation and loading -------------------------------------------------------------------

  function remember() {
    const query = new URLSearchParams({ date: state.date, view: state.view, tz: state.zone });
    history.replaceState(null, "", `${location.pathname}?${query}`);
    localStorage.setItem("board.tz", state.zone);
  }

  async function loadRange() {
    const { from, to } = range();
    const query = new URLSearchParams({ bookedFrom: from.toISOString(), bookedTo: to.toISOString(), limit: 200 });
    const booked = await L.all(`/api/jobs?${query}`);
    for (const job of booked) jobs.set(job.id, job);
    render();
  }

  function goTo(date) {
    state.date = date;
    syncControls();
    remember();
    render();
    loadRange().catch((error) => showAlert(`Could not load the bookings: ${error.message}`));
  }

  function syncControls() {
    $("date").value = state.date;
    $("view-day").setAttribute("aria-pressed", String(state.view === "day"));
    $("view-week").setAttribute("aria-pressed", String(state.view === "week"));
    $("prev").setAttribute("aria-label", state.view === "day" ? "Previous day" : "Previous week");
    $("next").setAttribute("aria-label", state.view === "day" ? "Next day" : "Next week");
    $("tz").value = state.zone;
  }

  function zoneOptions() {
    const zones = new Set([state.zone, browserZone, "UTC", ...[...contractors.values()].map((c) => c.timezone)]);
    $("tz").replaceChildren(...[...zones].filter(L.zoneIsValid).sort().map((zone) => el("option", { value: zone }, zone)));
    $("tz").value = state.zone;
  }

  function wire() {
    const step = () => (state.view === "day" ? 1 : 7);
    $("prev").addEventListener("click", () => goTo(L.addDays(state.date, -step())));
    $("next").addEventListener("click", () => goTo(L.addDays(state.date, step())));
    $("go-today").addEventListener("click", () => goTo(L.zoneDate(new Date(), state.zone)));
    $("date").addEventListener("change", () => $("date").value && goTo($("date").value));
    $("view-day").addEventListener("click", () => { state.view = "day"; goTo(state.date); });
    $("view-week").addEventListener("click", () => { state.view = "week"; goTo(state.date); });
    $("tz").addEventListener("change", () => { state.zone = $("tz").value; goTo(state.date); });
    for (const id of ["f-region", "f-type", "f-status", "f-booked"]) $(id).addEventListener("change", render);
    $("f-search").addEventListener("input", render);
    $("tray-shown").addEventListener("change", renderTray);
    $("alert-close").addEventListener("click", () => { $("alert").hidden = true; });
    wireCreate();
  }

  // --- creating a job ---------------------------------------------------------------------------

  function wireCreate() {
    const dialog = $("create");
    const form = $("create-form");
    const near = form.elements.near;
    function fillFromRegion() {
      const region = regions.find((r) => r.slug === near.value);
      if (region) {
        form.elements.lat.value = region.center.lat;
        form.elements.lng.value = region.center.lng;
      }
    }
    near.addEventListener("change", fillFromRegion);
    $("new-job").addEventListener("click", () => {
      form.reset();
      $("create-error").textContent = "";
      near.replaceChildren(...regions.map((r) => el("option", { value: r.slug }, r.name)));
      near.closest("label").hidden = regions.length === 0;
      if ($("f-region").value) near.value = $("f-region").value;
      fillFromRegion();
      form.elements.desiredDate.value = state.date;
      dialog.showModal();
      form.elements.type.focus();
    });
    $("create-cancel").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const body = {
        type: f.type.value,
        requiredSkills: f.requiredSkills.value.split(",").map((s) => s.trim()).filter(Boolean),
        location: { lat: Number(f.lat.value), lng: Number(f.lng.value), address: f.address.value.trim() },
        desiredDate: f.desiredDate.value,
        durationMinutes: Number(f.durationMinutes.value),
        priority: f.priority.value,
      };
      try {
        const job = await api("/api/jobs", { method: "POST", body });
        jobs.set(job.id, job);
        dialog.close();
        announce(`Job #${job.id} created.`);
        if (!days().includes(job.desiredDate)) goTo(job.desiredDate);
        select(job.id);
      } catch (error) {
        $("create-error").textContent = error.status === 400 ? fieldErrors(error.data) : error.message;
      }
    });
  }

  function fieldErrors(data, prefix = "") {
    if (!data || typeof data !== "object") return String(data);
    return Object.entries(data)
      .map(([field, value]) => (Array.isArray(value) ? `${prefix}${field}: ${value.join(" ")}` : fieldErrors(value, `${prefix}${field}.`)))
      .join("; ");
  }

  async function load() {
    wire();
    syncControls();
    const [people, places, open] = await Promise.all([
      L.all("/api/contractors?limit=200"),
      api("/api/regions"),
      L.all("/api/jobs?status=open&limit=200"),
    ]);
    for (const contractor of people) contractors.set(contractor.id, contractor);
    regions.push(...(Array.isArray(places) ? places : places.results || []));
    $("f-region").append(...regions.map((r) => el("option", { value: r.slug }, r.name)));
    for (const job of open) jobs.set(job.id, job);
    zoneOptions();
    remember();
    await loadRange();
    const last = Number(root.dataset.lastSequence);
    const recent = await api(`/api/events?after=${Math.max(0, last - 30)}&limit=30`);
    recent.results.forEach((event) => {
      if (event.type === "ContractorRated" && event.payload.rating !== null) ratings.set(event.payload.jobId, event.payload.rating);
      addToFeed(event);
    });
    window.boardStream = L.stream({
      path: root.dataset.stream,
      after: last,
      onEvent: (event) => onEvent(event).catch((error) => console.warn(error)),
      onState: L.setState,
      known: recent.results.map((event) => event.id),
    });
    root.dataset.ready = "true";
  }

  load().catch((error) => L.setState(`error: ${error.message}`));
})();
