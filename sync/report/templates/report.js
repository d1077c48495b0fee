"use strict";
(function () {
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  function key(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
  }
  function applyFilter(input, table) {
    var query = input.value.trim().toLowerCase();
    var rows = table.tBodies[0].rows;
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var match = query === "" || rows[i].textContent.toLowerCase().indexOf(query) !== -1;
      rows[i].hidden = !match;
      if (match) { shown++; }
    }
    var counter = document.getElementById(table.id + "-shown");
    if (counter) { counter.textContent = shown + " of " + rows.length + " shown"; }
  }
  function sortBy(table, header, index) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var c = collator.compare(key(a, index), key(b, index));
      return ascending ? c : -c;
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) { fragment.appendChild(row); });
    body.appendChild(fragment);
  }
  var initial = "";
  if (location.hash.indexOf("#q=") === 0) {
    try { initial = decodeURIComponent(location.hash.slice(3)); } catch (e) { initial = ""; }
  }
  var tables = document.querySelectorAll("table.data");
  Array.prototype.forEach.call(tables, function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, index) {
      header.tabIndex = 0;
      header.title = "Sort by this column";
      header.addEventListener("click", function () { sortBy(table, header, index); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, header, index); }
      });
    });
    var input = document.getElementById(table.id + "-filter");
    if (input) {
      input.hidden = false;
      input.addEventListener("input", function () { applyFilter(input, table); });
      if (initial) { input.value = initial; }
      applyFilter(input, table);
    }
  });
  document.body.setAttribute("data-ready", "1");
})();
