// A contractor's own upcoming assignments, kept live over ws/contractor/.
"use strict";

(() => {
  const { api, el, time } = Live;
  const root = document.getElementById("me");
  const contractorId = Number(root.dataset.contractor);
  const jobs = new Map();

  function render() {
    const now = Date.now();
    const upcoming = [...jobs.values()]
      .filter((job) => job.assignment && job.assignment.contractorId === contractorId && job.status !== "cancelled")
      .filter((job) => new Date(job.assignment.scheduledTimeSlot.end).getTime() > now)
      .sort((a, b) => a.assignment.scheduledTimeSlot.start.localeCompare(b.assignment.scheduledTimeSlot.start));
    document.getElementById("empty").hidden = upcoming.length > 0;
    document.getElementById("assignments").replaceChildren(
      ...upcoming.map((job) => {
        const slot = job.assignment.scheduledTimeSlot;
        const day = new Date(slot.start).toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" });
        return el("li", { "data-job-id": job.id },
          el("strong", {}, `${day} ${time(slot.start)}–${time(slot.end)}`),
          ` · #${job.id} ${job.type}`,
          el("p", { class: "muted" }, job.location.address || `${job.location.lat}, ${job.location.lng}`));
      }),
    );
  }

  async function refreshJob(id) {
    try {
      jobs.set(id, await api(`/api/jobs/${id}`));
    } catch (error) {
      // Moved to someone else: no longer ours to read.
      if (error.status === 403 || error.status === 404) jobs.delete(id);
      else throw error;
    }
    render();
  }

  async function load() {
    let page = await api("/api/jobs?limit=200");
    page.results.forEach((job) => jobs.set(job.id, job));
    render();
    Live.stream({
      path: root.dataset.stream,
      after: Number(root.dataset.lastSequence),
      onEvent: (event) => {
        if (event.payload.jobId !== undefined) refreshJob(event.payload.jobId);
      },
      onState: Live.setState,
    });
  }

  load().catch((error) => Live.setState(`error: ${error.message}`));
})();
