// Editor niceties; every page works without this file.
// Line numbers beside each editor, kept in step with its scrolling, with the
// lines the parser refused marked (from the listing the server rendered).
(function () {
  var text = document.getElementById("text");
  if (!text) return;
  var bad = {};
  document.querySelectorAll("#listing tr.bad").forEach(function (tr) {
    bad[tr.id.slice(1)] = true;
  });
  var wrap = document.createElement("div");
  wrap.className = "wrap";
  var gutter = document.createElement("div");
  gutter.className = "gutter";
  gutter.setAttribute("aria-hidden", "true");
  text.parentNode.insertBefore(wrap, text);
  wrap.appendChild(gutter);
  wrap.appendChild(text);
  function render() {
    var n = text.value.split("\n").length;
    var parts = [];
    for (var i = 1; i <= n; i++) {
      parts.push(bad[i] ? '<span class="bad">' + i + "</span>" : String(i));
    }
    gutter.innerHTML = parts.join("\n");
    gutter.style.height = text.clientHeight + "px";
  }
  text.addEventListener("input", render);
  text.addEventListener("scroll", function () { gutter.scrollTop = text.scrollTop; });
  render();
})();
