// The live dispatcher board: today's and tomorrow's jobs by status, contractors, the event
// log feed, recommendations with one-click booking. Every change arrives over the websocket
// and is applied without a reload.
"use strict";

(() => {
  const { api, el, time, localDate } = Live;
  const root = document.getElementById("board");
  const STATUSES = [
    ["open", "Open"],
    ["assigned", "Assigned"],
    ["in_progress", "In progress"],
    ["completed", "Completed"],
    ["cancelled", "Cancelled"],
  ];
  const days = { today: localDate(0), tomorrow: localDate(1) };
  const jobs = new Map();
  const contractors = new Map();
  let recsJob = null;

  function dayOf(job) {
    return Object.keys(days).find((key) => days[key] === job.desiredDate) || null;
  }

  function contractorName(id) {
    const contractor = contractors.get(id);
    return contractor ? contractor.name : `Contractor ${id}`;
  }

  function jobCard(job) {
    const slot = job.assignment && job.assignment.scheduledTimeSlot;
    return el(
      "article",
      { class: `job status-${job.status} priority-${job.priority}`, "data-job-id": job.id, "data-status": job.status },
      el("header", {}, el("strong", {}, `#${job.id} ${job.type}`), el("span", { class: "pill" }, job.priority)),
      el("p", { class: "muted" }, `${job.durationMinutes} min · ${job.region}`, job.location.address ? ` · ${job.location.address}` : ""),
      job.assignment
        ? el("p", { class: "assigned" }, `${contractorName(job.assignment.contractorId)} · ${time(slot.start)}–${time(slot.end)}`)
        : null,
      job.status === "cancelled" && job.cancelReason ? el("p", { class: "muted" }, `Cancelled: ${job.cancelReason}`) : null,
      job.status === "open" ? el("button", { onclick: () => showRecommendations(job.id) }, "Recommend") : null,
    );
  }

  function renderJobs() {
    for (const [key, date] of Object.entries(days)) {
      const day = root.querySelector(`.day[data-day="${key}"]`);
      day.querySelector(".date").textContent = date;
      const columns = day.querySelector(".columns");
      columns.replaceChildren(
        ...STATUSES.map(([status, label]) => {
          const list = [...jobs.values()].filter((job) => dayOf(job) === key && job.status === status);
          return el(
            "section",
            { class: `column column-${status}`, "data-column": status },
            el("h3", {}, `${label} `, el("small", {}, String(list.length))),
            list.sort((a, b) => a.id - b.id).map(jobCard),
          );
        }),
      );
    }
  }

  function renderContractors() {
    const list = document.getElementById("contractors");
    list.replaceChildren(
      ...[...contractors.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((c) =>
          el(
            "li",
            { "data-contractor-id": c.id, class: `status-${c.status}` },
            el("span", {}, c.name),
            el("span", { class: "muted" }, ` ${c.type} · ${c.region}`),
            el(
              "span",
              { class: "rating", "data-rating": c.averageRating ?? "" },
              c.averageRating === null ? " unrated" : ` ★ ${c.averageRating.toFixed(2)} (${c.ratingCount})`,
            ),
          ),
        ),
    );
  }

  function summary(event) {
    const p = event.payload;
    switch (event.type) {
      case "JobCreated": return `job #${p.jobId} created (${p.type}, ${p.desiredDate})`;
      case "JobUpdated": return `job #${p.jobId} edited (${p.updatedFields.join(", ")})`;
      case "JobAssigned": return `job #${p.jobId} → ${contractorName(p.contractorId)} at ${time(p.scheduledTimeSlot.start)}`;
      case "JobRescheduled": return `job #${p.jobId} moved to ${contractorName(p.contractorId)} at ${time(p.scheduledTimeSlot.start)}`;
      case "JobCancelled": return `job #${p.jobId} cancelled${p.reason ? ": " + p.reason : ""}`;
      case "ScheduleUpdated": return `${contractorName(p.contractorId)}: ${p.updatedFields.join(", ")} changed`;
      case "ContractorRated": return p.rating === null ? `job #${p.jobId} rating moved off ${contractorName(p.contractorId)}` : `${contractorName(p.contractorId)} rated ${p.rating}★ for job #${p.jobId}`;
      case "RecommendationsUpdated": return `recommendations for job #${p.jobId} re-ranked (${p.reason})`;
      default: return event.type;
    }
  }

  function addToFeed(event) {
    const feed = document.getElementById("feed");
    feed.prepend(
      el("li", { "data-sequence": event.sequence, "data-type": event.type },
        el("span", { class: "muted" }, `#${event.sequence} ${time(event.occurredAt, { hour: "2-digit", minute: "2-digit", second: "2-digit" })} `),
        summary(event)),
    );
    while (feed.children.length > 60) feed.lastElementChild.remove();
  }

  async function refreshJob(id) {
    try {
      const job = await api(`/api/jobs/${id}`);
      if (dayOf(job)) jobs.set(job.id, job);
      else jobs.delete(job.id);
    } catch (error) {
      if (error.status === 404) jobs.delete(id);
      else throw error;
    }
    renderJobs();
  }

  async function refreshContractor(id) {
    try {
      contractors.set(id, await api(`/api/contractors/${id}`));
    } catch (error) {
      if (error.status === 404) contractors.delete(id);
      else throw error;
    }
    renderContractors();
  }

  async function showRecommendations(jobId) {
    recsJob = jobId;
    const panel = document.getElementById("recs");
    panel.hidden = false;
    document.getElementById("recs-job").textContent = `job #${jobId}`;
    const hint = document.getElementById("recs-hint");
    const list = document.getElementById("recs-list");
    hint.textContent = "Ranking…";
    try {
      const data = await api(`/api/jobs/${jobId}/recommendations?limit=5`);
      if (recsJob !== jobId) return;
      hint.textContent = data.recommendations.length
        ? "Live: re-ranked when ratings, schedules or bookings change."
        : "No contractor can take this job in the next 14 days.";
      list.replaceChildren(
        ...data.recommendations.map((rec) =>
          el(
            "li",
            { "data-contractor-id": rec.contractorId },
            el("strong", {}, rec.contractorName), ` · score ${rec.score.toFixed(3)}`,
            el("p", { class: "muted" }, rec.explanation),
            el("div", { class: "slots" },
              rec.slots.map((slot) =>
                el("button", { onclick: () => assign(jobId, rec.contractorId, slot) },
                  `Assign ${new Date(slot.start).toLocaleDateString([], { weekday: "short" })} ${time(slot.start)}`),
              )),
          ),
        ),
      );
    } catch (error) {
      hint.textContent = `Could not rank: ${error.message}`;
    }
  }

  async function assign(jobId, contractorId, slot) {
    const hint = document.getElementById("recs-hint");
    try {
      await api(`/api/jobs/${jobId}/assign`, { method: "POST", body: { contractorId, start: slot.start, end: slot.end } });
      hint.textContent = `Booked job #${jobId}.`;
      document.getElementById("recs-list").replaceChildren();
      recsJob = null;
      await refreshJob(jobId);
    } catch (error) {
      hint.textContent = `Not booked: ${error.message}`;
      if (error.status === 409) showRecommendations(jobId);
    }
  }

  function onEvent(event) {
    addToFeed(event);
    const p = event.payload;
    if (p.jobId !== undefined && event.type !== "ContractorRated" && event.type !== "RecommendationsUpdated") {
      refreshJob(p.jobId);
    }
    if (event.type === "ScheduleUpdated" || event.type === "ContractorRated") {
      refreshContractor(p.contractorId);
    }
    if (event.type === "RecommendationsUpdated" && recsJob === p.jobId) {
      showRecommendations(p.jobId);
    }
  }

  async function load() {
    const [today, tomorrow, people] = await Promise.all([
      api(`/api/jobs?date=${days.today}&limit=200`),
      api(`/api/jobs?date=${days.tomorrow}&limit=200`),
      api(`/api/contractors?limit=200`),
    ]);
    for (const job of [...today.results, ...tomorrow.results]) jobs.set(job.id, job);
    for (const contractor of people.results) contractors.set(contractor.id, contractor);
    renderJobs();
    renderContractors();
    const last = Number(root.dataset.lastSequence);
    const recent = await api(`/api/events?after=${Math.max(0, last - 30)}&limit=30`);
    recent.results.forEach(addToFeed);
    window.boardStream = Live.stream({
      path: root.dataset.stream,
      after: last,
      onEvent,
      onState: Live.setState,
      known: recent.results.map((event) => event.id),
    });
  }

  load().catch((error) => Live.setState(`error: ${error.message}`));
})();
