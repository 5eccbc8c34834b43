// Seedance view: renders the JSON endpoints of this app. Every value from the server is put in
// the page with textContent / attributes, never as HTML (the chart SVG is parsed as SVG).
"use strict";

(function () {
  const PAGE_SIZE = 24;
  const state = { offset: 0, total: 0, uiRoot: "", one: null };

  // How each recorded outcome looks; its words come from the server (item.outcome_text,
  // GenerationResult's Outcome.summary), so the task log, XCom and the card say the same.
  const OUTCOMES = {
    succeeded: "ok",
    reused: "ok",
    in_progress: "busy",
    generation_failed: "bad",
    not_sent: "bad",
    refused: "bad",
    paid_not_delivered: "bad",
    uncertain: "bad",
    unknown: "bad",
  };
  // Outcomes where nothing reached the service, or it refused what did: no generation exists.
  const NO_GENERATION = {
    not_sent: "Not sent to the service",
    refused: "Refused by the service",
    reused: "Not sent to the service",
  };

  function authHeaders() {
    // Airflow 3.1's UI keeps the JWT in localStorage ("token"); 3.2+ use an httpOnly cookie,
    // which same-origin fetches send by themselves.
    const headers = { Accept: "application/json" };
    try {
      const token = window.localStorage.getItem("token");
      if (token) headers.Authorization = "Bearer " + token;
    } catch (e) { /* storage disabled: the cookie still works */ }
    return headers;
  }

  async function getJSON(path, params) {
    const url = new URL(path, document.baseURI);
    Object.entries(params || {}).forEach(([k, v]) => { if (v !== "" && v != null) url.searchParams.set(k, v); });
    const response = await fetch(url, { headers: authHeaders(), credentials: "same-origin" });
    if (response.status === 401 || response.status === 403) {
      throw new Error("You are not signed in to Airflow, or may not read these DAGs. Sign in and reload.");
    }
    if (!response.ok) throw new Error("Request failed: HTTP " + response.status + " " + (await response.text()));
    return path.endsWith(".svg") ? response.text() : response.json();
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v == null || v === false) return;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    });
    children.flat().forEach((c) => { if (c != null) node.append(c instanceof Node ? c : String(c)); });
    return node;
  }

  function notice(message) {
    const box = document.getElementById("notice");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // Inside Airflow's UI the page is an iframe without allow-top-navigation; links move the
  // parent (same origin) through its router instead, or open in the frame if that fails.
  function openInAirflow(event) {
    const href = event.currentTarget.getAttribute("href");
    if (window.top === window.self) return;
    try {
      window.top.history.pushState({}, "", href);
      window.top.dispatchEvent(new PopStateEvent("popstate", { state: {} }));
      event.preventDefault();
    } catch (e) { /* fall back to navigating the frame */ }
  }

  function video(item) {
    const sources = [item.media_url, item.video_url].filter(Boolean);
    const box = el("div", { class: "media" });
    if (!sources.length) {
      const why = {
        generation_failed: "No video: the generation failed",
        not_sent: "No video: nothing was sent",
        refused: "No video: the service refused the request",
        uncertain: "No video: the submission's answer was lost",
        in_progress: "No video yet",
      }[item.outcome] || (item.unreadable ? "No video: the record could not be read" : "No video");
      box.append(el("div", { class: "placeholder" }, item.outcome || item.unreadable ? why : "No video yet"));
      return box;
    }
    const player = el("video", { controls: true, muted: true, playsinline: true, preload: "metadata", src: sources[0] });
    player.muted = true;
    let index = 0;
    let retried = false;
    player.addEventListener("error", () => {
      // One retry of the same source first: a busy server or a dropped connection is not a
      // missing video (a delivered file's card must not lose its player to one failed fetch).
      if (!retried) { retried = true; setTimeout(() => { player.src = sources[index]; }, 1500); return; }
      retried = false;
      index += 1;
      if (index < sources.length) { player.src = sources[index]; return; }
      box.replaceChildren(el("div", { class: "placeholder" }, "Video unavailable (the service URL may have expired)"));
    });
    box.append(player);
    return box;
  }

  function card(item) {
    const r = item.request || {};
    const chips = [];
    if (r.aspect_ratio) chips.push(r.aspect_ratio);
    if (r.resolution) chips.push(r.resolution);
    if (r.duration) chips.push(r.duration + " s");
    if (r.generate_audio != null) chips.push(r.generate_audio ? "audio" : "no audio");
    if (item.reused_existing) chips.push("reused file");
    if (item.map_index >= 0) chips.push("map " + item.map_index);
    if (item.item != null) chips.push("item " + (item.item_id != null ? item.item_id : item.item));
    const links = el("div", { class: "links" },
      el("a", { href: item.links.dag_run, class: "dag-run-link" }, "DAG run"),
      el("a", { href: item.links.task_instance, class: "ti-link" }, "Task instance"));
    links.querySelectorAll("a").forEach((a) => a.addEventListener("click", openInAirflow));
    if (item.video_url && !item.media_url) {
      // No delivered copy: the service's URL is all there is, and it expires.
      links.append(el("a", { href: item.video_url, class: "service-link", target: "_blank", rel: "noopener noreferrer" },
        "Service URL (expires)"));
    }
    const outcome = {
      label: item.outcome_text || (item.unreadable ? "Record could not be read" : item.status),
      cls: OUTCOMES[item.outcome] || "busy",
    };
    // Unbilled *so far*: a generation still running (or whose end is unknown) is billed if it succeeds.
    const pending = ["in_progress", "unknown", "uncertain"].includes(item.outcome) && !item.consumed_credits;
    let cost = item.outcome === "reused" ? "0 credits (reused)"
      : item.consumed_credits + " credits · " + (item.consumed_usd_text || "$0") + (pending ? " so far" : "");
    if (item.outcome === "uncertain") {
      cost += " · may have been charged" + (item.possible_credits ? " (" + item.possible_credits + " credits if it became a generation)" : "");
    } else if (pending && item.possible_credits) {
      cost += " · " + item.possible_credits + " credits if it succeeds";
    }
    return el("article", { class: "card " + outcome.cls, "data-status": item.status, "data-outcome": item.outcome || "none" },
      video(item),
      el("div", { class: "body" },
        el("p", { class: "prompt" }, r.prompt || "(prompt not recorded)"),
        el("div", { class: "chips" }, chips.map((c) => el("span", { class: "chip" }, c))),
        el("div", { class: "outcome " + outcome.cls }, outcome.label),
        el("div", { class: "status" }, (NO_GENERATION[item.outcome] || "Service status " + (item.status || "—")) + (item.ti_state ? " · task " + item.ti_state : "")),
        item.error_message ? el("p", { class: "error" }, item.error_message) : null,
        item.delivered_to ? el("div", { class: "meta output-path" }, (item.outcome === "reused" ? "Reused file " : "Delivered to ") + item.delivered_to) : null,
        el("div", { class: "cost" }, cost),
        el("div", { class: "meta" }, item.dag_id + " · " + item.task_id + " · " + (item.end_date || item.start_date || "not started").replace("T", " ").slice(0, 19) + (item.end_date || item.start_date ? " UTC" : "")),
        item.seedance_task_id ? el("div", { class: "meta" }, "Seedance task " + item.seedance_task_id) : null,
        links));
  }

  function formValues(form) {
    return Object.fromEntries(new FormData(form).entries());
  }

  async function loadGallery() {
    const form = document.getElementById("gallery-filters");
    const params = Object.assign(formValues(form), state.one || {}, { limit: PAGE_SIZE, offset: state.offset });
    try {
      const page = await getJSON("api/generations", params);
      notice("");
      state.total = page.total;
      const cards = document.getElementById("cards");
      cards.replaceChildren(...page.items.map(card));
      const first = page.total ? page.offset + 1 : 0;
      const last = Math.min(page.total, page.offset + page.limit);
      document.getElementById("page-info").textContent = first + "–" + last + " of " + page.total;
      let summary = page.total + " card" + (page.total === 1 ? "" : "s");
      if (state.one) summary = "One task instance: " + state.one.task_id + " · " + summary;
      document.getElementById("gallery-summary").textContent = summary;
      document.getElementById("show-all").hidden = !state.one;
      const skipped = document.getElementById("gallery-skipped");
      skipped.textContent = page.skipped_records ? page.skipped_records + " record(s) on this page could not be read and are shown without their result." : "";
      skipped.hidden = !page.skipped_records;
      document.getElementById("prev").disabled = page.offset === 0;
      document.getElementById("next").disabled = page.offset + page.limit >= page.total;
      document.body.dataset.galleryLoaded = "true";
    } catch (e) { notice(e.message); document.body.dataset.galleryLoaded = "error"; }
  }

  function row(cells) { return el("tr", {}, cells.map((c) => el("td", {}, c))); }

  async function loadSpend() {
    const form = document.getElementById("spend-filters");
    const params = formValues(form);
    try {
      const [report, svg] = await Promise.all([getJSON("api/spend", params), getJSON("api/spend.svg", params)]);
      notice("");
      const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
      document.getElementById("spend-chart").replaceChildren(document.importNode(doc.documentElement, true));
      document.querySelector("#spend-by-day tbody").replaceChildren(...report.by_day.filter((d) => d.generations || d.reused).reverse().map(
        (d) => row([d.date, d.generations, d.reused, d.credits, d.usd_text])));
      document.querySelector("#spend-by-dag tbody").replaceChildren(...report.by_dag.map(
        (d) => row([d.dag_id, d.generations, d.reused, d.credits, d.usd_text])),
        el("tr", { class: "total" }, el("th", {}, "Total"), el("th", {}, report.total.generations),
          el("th", {}, report.total.reused), el("th", {}, report.total.credits), el("th", {}, report.total.usd_text)));
      const skipped = document.getElementById("spend-skipped");
      const notes = [];
      if (report.skipped_records) notes.push(report.skipped_records + " record(s) could not be read and are not counted.");
      if (report.unsettled_generations) notes.push(report.unsettled_generations + " generation(s) had not ended when their task stopped: their credits are not counted here and may still be billed.");
      const possible = report.possible_charges || {};
      if (possible.submissions) notes.push(possible.submissions + " submission(s) may have been charged: their answer was lost, so it is not known whether a generation was created (up to " + possible.estimated_credits + " credits, " + possible.usd_text + ", not counted above; check the account's dashboard).");
      skipped.textContent = notes.join(" ");
      skipped.hidden = !notes.length;
      const link = new URL("api/spend", document.baseURI);
      Object.entries(params).forEach(([k, v]) => { if (v) link.searchParams.set(k, v); });
      document.getElementById("spend-json").href = link.toString();
      document.body.dataset.spendLoaded = "true";
    } catch (e) { notice(e.message); }
  }

  async function loadDags() {
    try {
      const data = await getJSON("api/dags");
      document.querySelectorAll(".dag-select").forEach((select) => {
        const keep = select.value;
        select.replaceChildren(el("option", { value: "" }, "All DAGs"), ...data.dag_ids.map((d) => el("option", { value: d }, d)));
        select.value = keep;
      });
    } catch (e) { notice(e.message); }
  }

  function show() {
    const tab = window.location.hash === "#spend" ? "spend" : "gallery";
    document.getElementById("gallery").hidden = tab !== "gallery";
    document.getElementById("spend").hidden = tab !== "spend";
    document.getElementById("tab-gallery").classList.toggle("active", tab === "gallery");
    document.getElementById("tab-spend").classList.toggle("active", tab === "spend");
    return tab === "spend" ? loadSpend() : loadGallery();
  }

  function isoDay(d) { return d.toISOString().slice(0, 10); }

  async function start() {
    // Initial filters from the query string (the DAG tab opens ?dag_id=...).
    const query = new URLSearchParams(window.location.search);
    // The "Seedance video" extra link: ?dag_id=…&run_id=…&task_id=…&map_index=… shows that
    // task instance's card(s) only.
    if (query.get("run_id") && query.get("task_id")) {
      state.one = { run_id: query.get("run_id"), task_id: query.get("task_id") };
      if (query.get("map_index") != null && query.get("map_index") !== "") state.one.map_index = query.get("map_index");
    }
    document.getElementById("show-all").addEventListener("click", (e) => {
      e.preventDefault(); state.one = null; state.offset = 0; loadGallery();
    });
    ["gallery-filters", "spend-filters"].forEach((id) => {
      const form = document.getElementById(id);
      query.forEach((value, key) => { if (form.elements[key]) form.elements[key].value = value; });
    });
    const spendForm = document.getElementById("spend-filters");
    const today = new Date();
    if (!spendForm.elements.until.value) spendForm.elements.until.value = isoDay(today);
    if (!spendForm.elements.since.value) spendForm.elements.since.value = isoDay(new Date(today.getTime() - 29 * 86400000));
    await loadDags();
    query.forEach((value, key) => {
      document.querySelectorAll("form").forEach((form) => { if (form.elements[key]) form.elements[key].value = value; });
    });
    document.getElementById("gallery-filters").addEventListener("submit", (e) => { e.preventDefault(); state.offset = 0; loadGallery(); });
    spendForm.addEventListener("submit", (e) => { e.preventDefault(); loadSpend(); });
    document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); loadGallery(); });
    document.getElementById("next").addEventListener("click", () => { state.offset += PAGE_SIZE; loadGallery(); });
    window.addEventListener("hashchange", show);
    await show();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
