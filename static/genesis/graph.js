// The cockpit's task graph: Cytoscape.js laid out by dagre (left to right), one box per task naming its key, its
// status and its run time in text, inside a box per phase; colours follow the status, and the critical path (the
// chain with the most run time) has thick outlines and edges. The picture is sized to its content at a zoom that
// keeps the labels at 12px or more (a graph wider than the card pans). When the live poller brings the mission's
// new state (htmx), the nodes' statuses, run times and the critical path follow it without a reload.
(function () {
  "use strict";
  var COLOURS = {
    pending: "#eceff4", ready: "#dfe4ff", queued: "#cfe3ff", running: "#7fb6ff",
    waiting_input: "#ffd36b", waiting_approval: "#ffd36b", done: "#8fd6a5",
    failed: "#f28b8b", cancelled: "#d8a9a9", skipped: "#c9d3c9"
  };
  var LABELS = {
    pending: "Pending", ready: "Ready", queued: "Queued", running: "Running", waiting_input: "Waiting for input",
    waiting_approval: "Waiting for approval", done: "Done", failed: "Failed", cancelled: "Cancelled", skipped: "Skipped"
  };
  var FONT = 13, CHAR = 7.4, MAX_HEIGHT = 900, MIN_HEIGHT = 140, PAD = 16;
  // Boxes per phase make dagre's layout several times slower: a larger graph names the phase in each box instead.
  var PHASE_BOXES_UP_TO = 150;

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function label(key, statusLabel, duration, phase) {
    return (phase ? phase + "\n" : "") + key + "\n" + statusLabel + (duration ? " · " + duration : "");
  }

  function sized(text) {
    var lines = text.split("\n");
    var longest = Math.max.apply(null, lines.map(function (l) { return l.length; }));
    return { w: Math.min(Math.max(longest * CHAR + 24, 110), 260), h: lines.length * (FONT + 4) + 14 };
  }

  function draw() {
    var container = document.getElementById("task-graph");
    var data = readJson("task-graph-data");
    if (!container || !data || typeof cytoscape === "undefined") { return; }
    var dagre = typeof cytoscapeDagre !== "undefined";
    if (dagre) { cytoscape.use(cytoscapeDagre); }
    var elements = [], boxes = dagre && data.nodes.length <= PHASE_BOXES_UP_TO, phaseNames = {};
    (data.phases || []).forEach(function (p) {
      phaseNames[p.id] = p.label;
      if (boxes) { elements.push({ data: { id: p.id, label: p.label, phase: true } }); }
    });
    data.nodes.forEach(function (n) {
      var text = label(n.key, n.status_label, n.duration, boxes ? "" : phaseNames[n.phase]), size = sized(text);
      var node = { data: { id: n.id, key: n.key, title: n.title, status: n.status, duration: n.duration,
                           label: text, w: size.w, h: size.h }, classes: n.critical ? "critical" : "" };
      if (n.phase && boxes) { node.data.parent = n.phase; }
      if (!boxes) { node.data.phaseLabel = phaseNames[n.phase] || ""; }
      elements.push(node);
    });
    data.edges.forEach(function (e, i) {
      elements.push({ data: { id: "e" + i, source: e.source, target: e.target }, classes: e.critical ? "critical" : "" });
    });
    var style = [
      { selector: "node", style: {
          "shape": "round-rectangle", "label": "data(label)", "text-wrap": "wrap", "text-valign": "center",
          "text-max-width": 250, "font-size": FONT, "width": "data(w)", "height": "data(h)", "border-width": 1,
          "border-color": "#7b8499", "background-color": "#eceff4", "color": "#1d2433" } },
      { selector: "node[?phase]", style: {
          "shape": "round-rectangle", "background-color": "#f4f6fb", "background-opacity": 1, "border-color": "#c3c9d6",
          "border-width": 1, "label": "data(label)", "text-valign": "top", "text-halign": "center", "text-wrap": "wrap",
          "text-max-width": "200px", "font-size": FONT, "font-weight": 600, "color": "#4b5566", "padding": 14,
          "text-margin-y": -4 } },
      { selector: "edge", style: {
          "width": 1.4, "line-color": "#9aa3b5", "target-arrow-color": "#9aa3b5", "target-arrow-shape": "triangle",
          "curve-style": "bezier" } },
      { selector: "edge.critical", style: { "width": 3.5, "line-color": "#7a2e9a", "target-arrow-color": "#7a2e9a" } }
    ];
    Object.keys(COLOURS).forEach(function (status) {
      style.push({ selector: 'node[status = "' + status + '"]', style: { "background-color": COLOURS[status] } });
    });
    style.push({ selector: 'node[status = "running"]', style: { "border-width": 3, "border-color": "#0b5fa5" } });
    style.push({ selector: 'node[status = "failed"]', style: { "border-width": 3, "border-color": "#a32020", "border-style": "dashed" } });
    style.push({ selector: "node.critical", style: { "border-width": 4, "border-color": "#7a2e9a" } });
    var layout = { name: dagre ? "dagre" : "breadthfirst", rankDir: "LR", nodeSep: 14, rankSep: 50, directed: true };
    var cy = cytoscape({
      container: container, elements: elements, style: style, wheelSensitivity: 0.3, minZoom: 0.2, maxZoom: 2,
      layout: layout
    });
    fitToContent(cy, container);
    cy.on("tap", "node", function (evt) {
      if (!evt.target.data("phase")) { window.location.href = "/tasks/" + evt.target.id() + "/"; }
    });
    window.genesisGraph = cy;

    // The live poller brings the graph's state (missions/htmx/graph_state.html): statuses, run times and the
    // critical path are applied to the drawn picture; a board refreshed on its own brings the statuses alone.
    document.body.addEventListener("htmx:afterSettle", function () {
      var state = readJson("task-graph-state-data");
      if (state) {
        // A label that grew (a longer status, a run time) widens its box: the picture is laid out again, unless
        // it is too large to do that at every change (its boxes then keep their places).
        if (applyState(cy, state) && data.nodes.length <= PHASE_BOXES_UP_TO) {
          cy.layout(layout).run();
          fitToContent(cy, container);
        }
        return;
      }
      var statuses = readJson("task-status-data");
      if (!statuses) { return; }
      cy.batch(function () {
        Object.keys(statuses).forEach(function (id) {
          var node = cy.getElementById(id);
          if (node.nonempty() && node.data("status") !== statuses[id]) {
            setNode(node, statuses[id], node.data("duration"));
          }
        });
      });
    });
  }

  // Sets a node's status and run time; says whether its box changed size.
  function setNode(node, status, duration, statusLabel) {
    var text = label(node.data("key"), statusLabel || LABELS[status] || status, duration, node.data("phaseLabel"));
    var size = sized(text);
    var resized = size.w !== node.data("w") || size.h !== node.data("h");
    node.data({ status: status, duration: duration, label: text, w: size.w, h: size.h });
    return resized;
  }

  // Applies the live state to the picture; says whether a box changed size.
  function applyState(cy, state) {
    var onPath = {}, resized = false;
    (state.critical_edges || []).forEach(function (e) { onPath[e[0] + ">" + e[1]] = true; });
    cy.batch(function () {
      Object.keys(state.nodes).forEach(function (id) {
        var node = cy.getElementById(id), next = state.nodes[id];
        if (node.empty()) { return; }
        if (node.data("status") !== next.status || node.data("duration") !== next.duration) {
          resized = setNode(node, next.status, next.duration, next.status_label) || resized;
        }
        node.toggleClass("critical", !!next.critical);
      });
      cy.edges().forEach(function (edge) {
        edge.toggleClass("critical", !!onPath[edge.source().id() + ">" + edge.target().id()]);
      });
    });
    return resized;
  }

  // The box takes the height of the laid-out graph (within limits) at zoom 1, so that 13px labels stay 13px; a graph
  // that fits is centred, a wider one starts at its first tasks and pans.
  function fitToContent(cy, container) {
    var box = cy.elements().boundingBox();
    var height = Math.min(Math.max(box.h + 2 * PAD, MIN_HEIGHT), MAX_HEIGHT);
    container.style.height = Math.ceil(height) + "px";
    cy.resize();
    cy.zoom(1);
    var width = container.clientWidth;
    var x = box.w + 2 * PAD <= width ? (width - box.w) / 2 - box.x1 : PAD - box.x1;
    var y = box.h + 2 * PAD <= height ? (height - box.h) / 2 - box.y1 : PAD - box.y1;
    cy.pan({ x: x, y: y });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
