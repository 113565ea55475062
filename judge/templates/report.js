// The runs table of report.html: click a header to sort (again to reverse), type to filter, pick a status.
(function () {
  var table = document.getElementById("runs-table");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var text = document.getElementById("runs-filter");
  var status = document.getElementById("runs-status");
  var flagged = document.getElementById("runs-flagged");
  var count = document.getElementById("runs-count");
  function apply() {
    var q = text.value.toLowerCase(), s = status.value, f = flagged.checked, shown = 0;
    rows.forEach(function (row) {
      var ok = (!q || row.textContent.toLowerCase().indexOf(q) >= 0) && (!s || row.dataset.status === s) &&
               (!f || row.dataset.flagged === "1");
      row.style.display = ok ? "" : "none";
      shown += ok ? 1 : 0;
    });
    count.textContent = shown + " of " + rows.length + " runs";
  }
  var order = {};
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () {
      var col = +th.dataset.col, dir = order[col] = -(order[col] || -1);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.key, y = b.cells[col].dataset.key;
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.className = ""; });
      th.className = dir > 0 ? "asc" : "desc";
    });
  });
  [text, status, flagged].forEach(function (el) { el.addEventListener("input", apply); });
  apply();
})();
