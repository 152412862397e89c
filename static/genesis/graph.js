// The cockpit's task graph: Cytoscape.js laid out by dagre (left to right), one box per task naming its key and
// status in text; colours follow the status. When the board refreshes (htmx), the node statuses follow it.
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

  function readJson(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function draw() {
    var container = document.getElementById("task-graph");
    var data = readJson("task-graph-data");
    if (!container || !data || typeof cytoscape === "undefined") { return; }
    if (typeof cytoscapeDagre !== "undefined") { cytoscape.use(cytoscapeDagre); }
    var elements = [];
    data.nodes.forEach(function (n) {
      elements.push({ data: { id: n.id, key: n.key, title: n.title, status: n.status,
                              label: n.key + "\n" + n.status_label } });
    });
    data.edges.forEach(function (e, i) {
      elements.push({ data: { id: "e" + i, source: e.source, target: e.target } });
    });
    var style = [
      { selector: "node", style: {
          "shape": "round-rectangle", "label": "data(label)", "text-wrap": "wrap", "text-valign": "center",
          "font-size": 11, "width": 150, "height": 40, "border-width": 1, "border-color": "#7b8499",
          "background-color": "#eceff4", "color": "#1d2433" } },
      { selector: "edge", style: {
          "width": 1.2, "line-color": "#9aa3b5", "target-arrow-color": "#9aa3b5", "target-arrow-shape": "triangle",
          "curve-style": "bezier" } }
    ];
    Object.keys(COLOURS).forEach(function (status) {
      style.push({ selector: 'node[status = "' + status + '"]', style: { "background-color": COLOURS[status] } });
    });
    style.push({ selector: 'node[status = "running"]', style: { "border-width": 3, "border-color": "#0b5fa5" } });
    style.push({ selector: 'node[status = "failed"]', style: { "border-width": 3, "border-color": "#a32020", "border-style": "dashed" } });
    var cy = cytoscape({
      container: container, elements: elements, style: style, wheelSensitivity: 0.3,
      layout: { name: typeof cytoscapeDagre !== "undefined" ? "dagre" : "breadthfirst", rankDir: "LR",
                nodeSep: 12, rankSep: 60, directed: true }
    });
    // A small graph is not blown up to fill the box (the layout runs synchronously in the constructor).
    if (cy.zoom() > 1.1) { cy.zoom(1.1); cy.center(); }
    cy.on("tap", "node", function (evt) { window.location.href = "/tasks/" + evt.target.id() + "/"; });
    window.genesisGraph = cy;

    document.body.addEventListener("htmx:afterSettle", function (evt) {
      var statuses = readJson("task-status-data");
      if (!statuses) { return; }
      cy.batch(function () {
        Object.keys(statuses).forEach(function (id) {
          var node = cy.getElementById(id);
          if (node.nonempty() && node.data("status") !== statuses[id]) {
            node.data("status", statuses[id]);
            node.data("label", node.data("key") + "\n" + (LABELS[statuses[id]] || statuses[id]));
          }
        });
      });
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
