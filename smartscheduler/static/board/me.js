// A contractor's own week (the next seven days), day by day in its own time zone, kept live over ws/contractor/:
// each visit's time, duration and address (with a map link), Start and Complete, and a line
// for every change ("#35 moved to Wed 3 Dec 12:30"), highlighted where it happened.
"use strict";

(() => {
  const L = Live;
  const { api, el } = L;
  const root = document.getElementById("me");
  const $ = (id) => document.getElementById(id);
  const contractorId = Number(root.dataset.contractor);
  const zone = L.zoneIsValid(root.dataset.timezone) ? root.dataset.timezone : "UTC";
  const jobs = new Map();
  const STATUS = { assigned: "Booked", in_progress: "In progress", completed: "Done" };
  const busy = new Set(); // job ids this page is changing (their events are ours)
  let first = L.zoneDate(new Date(), zone); // the seven days shown start here (today at first)
  const startSequence = Number(root.dataset.lastSequence);

  function week() {
    return Array.from({ length: 7 }, (_, i) => L.addDays(first, i));
  }

  function mine(job) {
    return job.assignment && job.assignment.contractorId === contractorId && job.status !== "cancelled";
  }

  function duration(minutes) {
    const h = Math.floor(minutes / 60);
    const m = minutes % 60;
    return h ? `${h} h${m ? ` ${m} min` : ""}` : `${m} min`;
  }

  function visit(job) {
    const slot = job.assignment.scheduledTimeSlot;
    const buttons = el("div", { class: "buttons" });
    if (job.status === "assigned") {
      buttons.append(el("button", { type: "button", class: "start", onclick: () => act(job.id, "start", {}) }, "Start"));
    }
    let notes = null;
    if (job.status === "in_progress") {
      notes = el("textarea", { rows: "2", maxlength: "2000", "aria-label": `Notes for job #${job.id} (optional)`, placeholder: "Notes (optional)" });
      buttons.append(el("button", {
        type: "button", class: "complete",
        onclick: () => act(job.id, "complete", notes.value.trim() ? { notes: notes.value.trim() } : {}),
      }, "Complete"));
    }
    const address = job.location.address || `${job.location.lat}, ${job.location.lng}`;
    return el("li", { class: `visit status-${job.status}`, "data-job-id": job.id, "data-status": job.status },
      el("div", { class: "when" }, `${L.clock(slot.start, zone)}–${L.clock(slot.end, zone)}`,
        el("span", { class: "muted small" }, ` · ${duration(job.durationMinutes)} · ${STATUS[job.status] || job.status}`)),
      el("div", {}, el("strong", {}, `#${job.id} ${job.type}`), job.priority === "urgent" || job.priority === "high" ? el("span", { class: "pill pill-urgent" }, ` ${job.priority}`) : null),
      el("div", { class: "where" }, address, " · ",
        el("a", { href: L.mapLink(job.location), target: "_blank", rel: "noopener noreferrer", "aria-label": `Map of ${address}` }, "Map")),
      notes,
      buttons.childElementCount ? buttons : null);
  }

  function render() {
    const list = week();
    const today = L.zoneDate(new Date(), zone);
    $("week-title").textContent = `${L.dayLabel(list[0], { day: "numeric", month: "short" })} – ${L.dayLabel(list[6], { day: "numeric", month: "short", year: "numeric" })}`;
    let count = 0;
    $("assignments").replaceChildren(...list.map((date) => {
      const visits = [...jobs.values()]
        .filter((job) => mine(job) && L.zoneDate(job.assignment.scheduledTimeSlot.start, zone) === date)
        .sort((a, b) => a.assignment.scheduledTimeSlot.start.localeCompare(b.assignment.scheduledTimeSlot.start));
      count += visits.length;
      return el("section", { class: `weekday${date === today ? " today" : ""}`, "data-date": date, "aria-label": L.dayLabel(date, { weekday: "long", day: "numeric", month: "long" }) },
        el("h3", {}, L.dayLabel(date, { weekday: "long", day: "numeric", month: "short" })),
        visits.length ? el("ol", { class: "visits" }, visits.map(visit)) : el("p", { class: "muted small" }, "Nothing booked."));
    }));
    $("empty").hidden = count > 0;
  }

  function change(text, jobId) {
    const list = $("changes");
    const item = el("li", { "data-job-id": jobId }, text);
    list.prepend(item);
    while (list.children.length > 5) list.lastElementChild.remove();
    L.flash([item]);
  }

  async function refreshJob(id) {
    try {
      jobs.set(id, await api(`/api/jobs/${id}`));
    } catch (error) {
      // Moved to someone else or cancelled: no longer ours to read.
      if (error.status === 403 || error.status === 404) jobs.delete(id);
      else throw error;
    }
    render();
  }

  async function act(id, verb, body) {
    busy.add(id);
    try {
      await api(`/api/jobs/${id}/${verb}`, { method: "POST", body });
      $("alert").hidden = true;
    } catch (error) {
      $("alert-text").textContent = `Job #${id}: ${error.message}`;
      $("alert").hidden = false;
    } finally {
      setTimeout(() => busy.delete(id), 3000);
    }
    await refreshJob(id);
  }

  function describe(event) {
    const p = event.payload;
    const at = p.scheduledTimeSlot ? L.when(p.scheduledTimeSlot.start, zone) : "";
    switch (event.type) {
      case "JobAssigned": return `New: #${p.jobId} on ${at}`;
      case "JobRescheduled":
        if (p.contractorId !== contractorId) return `#${p.jobId} was given to another contractor`;
        if (p.previousContractorId !== contractorId) return `New: #${p.jobId} on ${at}`;
        return `#${p.jobId} moved to ${at}`;
      case "JobCancelled": return `#${p.jobId} was cancelled${p.reason ? `: ${p.reason}` : ""}`;
      case "JobStarted": return `#${p.jobId} started`;
      case "JobCompleted": return `#${p.jobId} completed`;
      default: return null;
    }
  }

  async function onEvent(event) {
    const jobId = event.payload.jobId;
    if (jobId === undefined || event.type === "ContractorRated") return;
    await refreshJob(jobId);
    const text = describe(event);
    const ours = busy.has(jobId) && ["JobStarted", "JobCompleted"].includes(event.type);
    // An event the page was built after (the relay may still be delivering it) is no news.
    if (text && !ours && event.sequence > startSequence) change(text, jobId);
    L.flash(document.querySelectorAll(`#assignments [data-job-id="${jobId}"]`));
  }

  async function loadWeek() {
    const list = week();
    const query = new URLSearchParams({
      bookedFrom: L.zoned(list[0], 0, zone).toISOString(),
      bookedTo: L.zoned(L.addDays(list[6], 1), 0, zone).toISOString(),
      limit: 200,
    });
    for (const job of await L.all(`/api/jobs?${query}`)) jobs.set(job.id, job);
    render();
  }

  function goTo(date) {
    first = date;
    render();
    loadWeek().catch((error) => L.setState(`error: ${error.message}`));
  }

  async function load() {
    $("prev-week").addEventListener("click", () => goTo(L.addDays(first, -7)));
    $("next-week").addEventListener("click", () => goTo(L.addDays(first, 7)));
    $("this-week").addEventListener("click", () => goTo(L.zoneDate(new Date(), zone)));
    $("alert-close").addEventListener("click", () => { $("alert").hidden = true; });
    await loadWeek();
    window.meStream = L.stream({
      path: root.dataset.stream,
      after: Number(root.dataset.lastSequence),
      onEvent: (event) => onEvent(event).catch((error) => console.warn(error)),
      onState: L.setState,
    });
    root.dataset.ready = "true";
  }

  load().catch((error) => L.setState(`error: ${error.message}`));
})();
