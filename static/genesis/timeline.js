// The replay timeline (templates/missions/inc/gantt.html): plays the mission's steps one by one. Step N shows the
// runs started by then (a run still going at that step drawn up to it) and the marks made by then, with a playhead
// and a caption saying what happened. The checkbox switches between the real time scale and the one where each
// stretch with nothing running is collapsed; every position was computed by the server for both scales.
(function () {
  "use strict";
  var root = document.getElementById("gantt");
  if (!root) { return; }
  var total = parseInt(root.dataset.steps, 10);
  var steps = Array.prototype.map.call(document.querySelectorAll(".gantt-steps li"), function (li) {
    return { pos: parseFloat(li.dataset.pos), posC: parseFloat(li.dataset.posC), text: li.textContent.trim() };
  });
  var bars = root.querySelectorAll(".gantt-bar"), marks = root.querySelectorAll(".gantt-mark");
  var gaps = root.querySelectorAll(".gantt-gap"), playhead = root.querySelector(".gantt-playhead");
  var caption = document.getElementById("gantt-caption"), collapse = document.getElementById("gantt-collapse");
  var playButton = document.querySelector('[data-gantt="play"]');
  var state = { step: total - 1, collapsed: !!(collapse && collapse.checked), timer: null };

  function num(el, name) { return parseFloat(el.dataset[name]); }

  function render() {
    var c = state.collapsed, n = state.step, all = n >= total - 1;
    root.classList.toggle("collapsed", c);
    var here = steps[n] ? (c ? steps[n].posC : steps[n].pos) : 100;
    bars.forEach(function (bar) {
      var left = num(bar, c ? "leftC" : "left"), width = num(bar, c ? "widthC" : "width");
      var started = parseInt(bar.dataset.startStep, 10) <= n, ended = parseInt(bar.dataset.endStep, 10) <= n;
      bar.hidden = !started;
      bar.classList.toggle("partial", started && !ended);
      bar.style.left = left + "%";
      bar.style.width = (ended ? width : Math.max(Math.min(width, here - left), 0.15)) + "%";
    });
    marks.forEach(function (mark) {
      mark.hidden = parseInt(mark.dataset.step, 10) > n;
      mark.style.left = num(mark, c ? "leftC" : "left") + "%";
    });
    gaps.forEach(function (gap) {
      gap.style.left = num(gap, c ? "leftC" : "left") + "%";
      gap.style.width = num(gap, c ? "widthC" : "width") + "%";
    });
    playhead.hidden = all;
    playhead.style.left = here + "%";
    caption.textContent = all && !state.stepping ? "All " + total + " steps shown."
      : "Step " + (n + 1) + " of " + total + ": " + (steps[n] ? steps[n].text : "");
    root.dataset.step = String(n);
  }

  function go(n) { state.step = Math.max(0, Math.min(total - 1, n)); state.stepping = true; render(); }

  function stop() {
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
    playButton.textContent = "Play";
  }

  function play() {
    if (state.timer) { stop(); return; }
    if (state.step >= total - 1) { go(0); }
    playButton.textContent = "Pause";
    state.timer = setInterval(function () {
      if (state.step >= total - 1) { stop(); return; }
      go(state.step + 1);
    }, 700);
  }

  var actions = {
    first: function () { stop(); go(0); },
    back: function () { stop(); go(state.step - 1); },
    forward: function () { stop(); go(state.step + 1); },
    play: play,
    all: function () { stop(); state.stepping = false; state.step = total - 1; render(); }
  };
  document.querySelectorAll("[data-gantt]").forEach(function (button) {
    button.addEventListener("click", function () { actions[button.dataset.gantt](); });
  });
  if (collapse) { collapse.addEventListener("change", function () { state.collapsed = collapse.checked; render(); }); }
  window.genesisTimeline = { go: go, state: state };
  render();
})();
