// The stakeholder dashboard's charts, drawn by Chart.js (vendored): for each <canvas data-chart="ID">, the chart
// described by the JSON in <script id="ID">: rows built per month as bars, the source's rows as a line when known,
// with titled axes, month labels, tooltips, and each bar's value printed above it.
(function () {
  "use strict";
  var BAR = "#2454d6", LINE = "#b45309";

  function formatted(value) { return value === null || value === undefined ? "-" : Number(value).toLocaleString("en"); }

  // Prints each bar's value above it where it fits (Chart.js draws values only in tooltips).
  var barValues = {
    id: "genesisBarValues",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      ctx.save();
      ctx.font = "12px system-ui, 'DejaVu Sans', sans-serif";
      ctx.fillStyle = "#1d2433";
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      chart.data.datasets.forEach(function (dataset, i) {
        var meta = chart.getDatasetMeta(i);
        if (meta.type !== "bar" || meta.hidden) { return; }
        meta.data.forEach(function (bar, j) {
          var text = formatted(dataset.data[j]);
          // Too narrow a bar (many months) keeps its value for the tooltip and the table rather than overlap.
          if (ctx.measureText(text).width <= bar.width + 8) { ctx.fillText(text, bar.x, bar.y - 3); }
        });
      });
      ctx.restore();
    }
  };

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") { return null; }
    var spec = JSON.parse(source.textContent);
    var datasets = spec.datasets.map(function (d) {
      var line = d.type === "line";
      return { type: line ? "line" : "bar", label: d.label, data: d.data, order: line ? 0 : 1,
               backgroundColor: line ? LINE : BAR, borderColor: line ? LINE : BAR, borderWidth: line ? 2 : 0,
               pointRadius: line ? 3 : 0, maxBarThickness: 56 };
    });
    var top = 0;
    spec.datasets.forEach(function (d) { d.data.forEach(function (v) { if (v > top) { top = v; } }); });
    return new Chart(canvas, {
      type: "bar",
      data: { labels: spec.labels, datasets: datasets },
      plugins: [barValues],
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        layout: { padding: { top: 18 } },
        scales: {
          x: { title: { display: true, text: spec.x_title }, grid: { display: false } },
          y: { beginAtZero: true, suggestedMax: Math.ceil(top * 1.12), title: { display: true, text: spec.y_title },
               ticks: { callback: function (v) { return formatted(v); } } }
        },
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom" },
          tooltip: { callbacks: { label: function (item) { return item.dataset.label + ": " + formatted(item.parsed.y); } } }
        }
      }
    });
  }

  function drawAll() {
    window.genesisCharts = window.genesisCharts || {};
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (window.genesisCharts[canvas.dataset.chart]) { return; }
      var chart = draw(canvas);
      if (chart) { window.genesisCharts[canvas.dataset.chart] = chart; }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", drawAll); } else { drawAll(); }
})();
