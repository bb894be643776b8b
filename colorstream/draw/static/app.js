"use strict";
// colorstream draw: sketch a face with pointer events (mouse, touch, pen); the photo follows as you draw.
// The canvas is one face-framed crop, as the model was trained: the server inverts it whole.

(() => {
  const SIDE = 512;  // canvas pixels, whatever size it is shown at
  const PENCIL = "#555";
  const ERASER_SCALE = 4;  // the eraser is this many pencil widths wide
  const DEBOUNCE_MS = 90;  // a pause this long sends the sketch ...
  const MAX_WAIT_MS = 350;  // ... and a long stroke still sends at least this often

  const $ = (id) => document.getElementById(id);
  const sketch = $("sketch");
  const ctx = sketch.getContext("2d");
  const photo = $("photo");
  const history = { actions: [], undone: [], stroke: null, tool: "pencil" };
  const live = { timer: 0, firstChange: 0, busy: false, dirty: false, issued: 0, shown: 0, blob: null };

  // ---------------------------------------------------------------- face guide
  // Drawn, not learned from anyone's faces. The model's crop is 1.4x the Haar face box; in that crop
  // OpenCV's eye and smile cascades put the eyes at 41% of the height (centres at 35% and 65% of the
  // width) and the mouth near 72%, and the eyes sit halfway between the top of the skull and the chin.
  function drawGuide(g) {
    g.fillStyle = "#fff";
    g.fillRect(0, 0, SIDE, SIDE);
    g.scale(SIDE, SIDE);
    g.lineWidth = 2 / SIDE;
    g.strokeStyle = "#b4c3d8";
    g.setLineDash([7 / SIDE, 6 / SIDE]);
    const path = (...points) => {
      g.beginPath();
      points.forEach(([x, y], i) => (i ? g.lineTo(x, y) : g.moveTo(x, y)));
      g.stroke();
    };
    const ellipse = (x, y, rx, ry, from = 0, to = 2 * Math.PI) => {
      g.beginPath();
      g.ellipse(x, y, rx, ry, 0, from, to);
      g.stroke();
    };
    ellipse(0.5, 0.43, 0.32, 0.45);  // head: skull top just above the crop, chin at 88%
    path([0.5, 0.06], [0.5, 0.88]);  // centre line
    path([0.2, 0.415], [0.8, 0.415]);  // eye line
    ellipse(0.35, 0.415, 0.065, 0.026);
    ellipse(0.65, 0.415, 0.065, 0.026);
    path([0.28, 0.36], [0.35, 0.345], [0.42, 0.355]);  // brows
    path([0.58, 0.355], [0.65, 0.345], [0.72, 0.36]);
    path([0.47, 0.43], [0.45, 0.58], [0.5, 0.6], [0.55, 0.58], [0.53, 0.43]);  // nose
    path([0.39, 0.715], [0.5, 0.73], [0.61, 0.715]);  // mouth
    ellipse(0.185, 0.49, 0.035, 0.085, Math.PI / 2, 1.5 * Math.PI);  // ears
    ellipse(0.815, 0.49, 0.035, 0.085, -Math.PI / 2, Math.PI / 2);
    path([0.38, 0.84], [0.37, 1]);  // neck
    path([0.62, 0.84], [0.63, 1]);
  }

  // ---------------------------------------------------------------- drawing
  function paintSegment(stroke, i) {
    const p = stroke.points[i];
    const q = stroke.points[Math.max(0, i - 1)];
    ctx.save();
    ctx.globalCompositeOperation = stroke.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = PENCIL;
    if (i === 0) {
      ctx.beginPath();
      ctx.arc(p.x, p.y, p.w / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.lineCap = "round";
      ctx.lineWidth = (p.w + q.w) / 2;
      ctx.beginPath();
      ctx.moveTo(q.x, q.y);
      ctx.lineTo(p.x, p.y);
      ctx.stroke();
    }
    ctx.restore();
  }

  function paintImage(bitmap) {
    const scale = Math.min(SIDE / bitmap.width, SIDE / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    ctx.drawImage(bitmap, (SIDE - w) / 2, (SIDE - h) / 2, w, h);
  }

  function redraw() {
    ctx.clearRect(0, 0, SIDE, SIDE);
    for (const action of history.actions) {
      if (action.kind === "clear") ctx.clearRect(0, 0, SIDE, SIDE);
      else if (action.kind === "image") paintImage(action.bitmap);
      else action.points.forEach((_, i) => paintSegment(action, i));
    }
  }

  function hasInk() {
    const since = history.actions.slice(history.actions.map((a) => a.kind).lastIndexOf("clear") + 1);
    return [...since, history.stroke].some((a) => a && (a.kind === "image" || a.tool === "pencil"));
  }

  function addPoint(event) {
    const rect = sketch.getBoundingClientRect();
    // Pressure where the device reports it; mice and plain touch report 0.5 (or 0), which keeps the chosen width.
    const pressure = event.pressure > 0 ? event.pressure : 0.5;
    const stroke = history.stroke;
    const width = Number($("width").value) * (stroke.tool === "eraser" ? ERASER_SCALE : 1);
    stroke.points.push({
      x: ((event.clientX - rect.left) * SIDE) / rect.width,
      y: ((event.clientY - rect.top) * SIDE) / rect.height,
      w: width * (0.3 + 1.4 * pressure),
    });
    paintSegment(stroke, stroke.points.length - 1);
  }

  sketch.addEventListener("pointerdown", (event) => {
    if (history.stroke || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    sketch.setPointerCapture(event.pointerId);
    history.stroke = { kind: "stroke", tool: history.tool, pointerId: event.pointerId, points: [] };
    addPoint(event);
    changed();
  });

  sketch.addEventListener("pointermove", (event) => {
    if (!history.stroke || event.pointerId !== history.stroke.pointerId) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    (events.length ? events : [event]).forEach(addPoint);
    changed();
  });

  for (const type of ["pointerup", "pointercancel"]) {
    sketch.addEventListener(type, (event) => {
      if (!history.stroke || event.pointerId !== history.stroke.pointerId) return;
      const stroke = history.stroke;
      history.stroke = null;
      commit(stroke);
    });
  }

  // ---------------------------------------------------------------- history
  function commit(action) {
    history.actions.push(action);
    history.undone = [];
    edited();
  }

  function undo() {
    if (history.stroke || !history.actions.length) return;
    history.undone.push(history.actions.pop());
    redraw();
    edited();
  }

  function redo() {
    if (history.stroke || !history.undone.length) return;
    history.actions.push(history.undone.pop());
    redraw();
    edited();
  }

  function edited() {
    $("undo").disabled = !history.actions.length;
    $("redo").disabled = !history.undone.length;
    changed();
  }

  // ---------------------------------------------------------------- live photo
  // Debounced, one request in flight at a time, and a response older than what is shown is dropped
  // (a clear, for one, overtakes the request that was in flight when it happened).
  function changed() {
    if (!hasInk()) {
      clearTimeout(live.timer);
      live.dirty = false;
      live.firstChange = 0;
      showPhoto(null, ++live.issued);
      markBusy();
      return;
    }
    live.dirty = true;
    live.firstChange = live.firstChange || performance.now();
    clearTimeout(live.timer);
    const wait = Math.min(DEBOUNCE_MS, Math.max(0, live.firstChange + MAX_WAIT_MS - performance.now()));
    live.timer = setTimeout(send, wait);
    markBusy();
  }

  // The photo dims while it is behind the sketch; tests wait for data-busy="false" too.
  function markBusy() {
    photo.dataset.busy = String(live.busy || live.dirty);
  }

  async function send() {
    if (live.busy) return;  // the request in flight sends again when it is done
    live.dirty = false;
    live.firstChange = 0;
    live.busy = true;
    markBusy();
    const id = ++live.issued;
    const started = performance.now();
    try {
      const response = await fetch(`/invert?strictness=${$("strictness").value}`, {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: await sketchBlob(),
      });
      if (!response.ok) {
        const reply = await response.json().catch(() => ({}));
        throw new Error(reply.error || `${response.status} ${response.statusText}`);
      }
      const blob = await response.blob();
      if (id > live.shown) {
        showPhoto(blob, id);
        const total = Math.round(performance.now() - started);
        setStatus(`${response.headers.get("X-Inference-Ms")} ms on the server, ${total} ms in all`);
      }
    } catch (error) {
      setStatus(`No photo: ${error.message}`);
    } finally {
      live.busy = false;
      if (live.dirty) changed();
      else markBusy();
    }
  }

  function showPhoto(blob, id) {
    live.shown = id;
    live.blob = blob;
    if (photo.src) URL.revokeObjectURL(photo.src);
    photo.hidden = !blob;
    $("save-photo").disabled = !blob;
    if (blob) photo.src = URL.createObjectURL(blob);
    else photo.removeAttribute("src");
    photo.dataset.version = String(id);  // for tests: which request the shown photo answers
  }

  // The sketch on white paper, as sent and saved. An OffscreenCanvas encodes at once, where a canvas's
  // toBlob may wait up to a second for the page to go idle, which it does not while someone draws.
  function sketchBlob() {
    const out = new OffscreenCanvas(SIDE, SIDE);
    const g = out.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, SIDE, SIDE);
    g.drawImage(sketch, 0, 0);
    return out.convertToBlob({ type: "image/png" });
  }

  const setStatus = (text) => { $("status").textContent = text; };

  function download(blob, name) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  // ---------------------------------------------------------------- tools
  function pickTool(tool) {
    history.tool = tool;
    $("pencil").setAttribute("aria-pressed", String(tool === "pencil"));
    $("eraser").setAttribute("aria-pressed", String(tool === "eraser"));
  }

  $("pencil").addEventListener("click", () => pickTool("pencil"));
  $("eraser").addEventListener("click", () => pickTool("eraser"));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", () => {
    if (!history.actions.length || history.actions[history.actions.length - 1].kind === "clear") return;
    ctx.clearRect(0, 0, SIDE, SIDE);
    commit({ kind: "clear" });
  });
  $("guide-toggle").addEventListener("change", (event) => { $("guide").hidden = !event.target.checked; });
  $("strictness").addEventListener("input", (event) => {
    $("strictness-value").textContent = Number(event.target.value).toFixed(2);
    changed();
  });
  $("load").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", async (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (!file) return;
    try {
      const bitmap = await createImageBitmap(file);
      paintImage(bitmap);
      commit({ kind: "image", bitmap });
    } catch {
      setStatus(`${file.name} is not an image this browser can read`);
    }
  });
  $("save-sketch").addEventListener("click", async () => download(await sketchBlob(), "sketch.png"));
  $("save-photo").addEventListener("click", () => live.blob && download(live.blob, "photo.png"));

  document.addEventListener("keydown", (event) => {
    const key = event.key.toLowerCase();
    if ((event.ctrlKey || event.metaKey) && key === "z") {
      event.preventDefault();
      (event.shiftKey ? redo : undo)();
    } else if ((event.ctrlKey || event.metaKey) && key === "y") {
      event.preventDefault();
      redo();
    } else if (!event.ctrlKey && !event.metaKey && !event.altKey && (key === "p" || key === "e")) {
      pickTool(key === "p" ? "pencil" : "eraser");
    }
  });

  drawGuide($("guide").getContext("2d"));
})();
