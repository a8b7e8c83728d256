"use strict";
// Sort a table by clicking a header; filter its rows by typing (words, column:text,
// column<number); page through them ("1-100 of N"). Allowed by the page's CSP by this
// script's SHA-256 only. Reads cells with textContent, writes nothing but textContent
// and the hidden flag: no HTML is ever built from a value.
(function () {
  const NUMERIC = /^([a-z_ ]+?)(<=|>=|<|>|=)(-?\d+(?:\.\d+)?)$/;

  function cellText(row, index) {
    const cell = row.cells[index];
    return cell ? cell.textContent.trim() : "";
  }

  function compare(a, b, numeric) {
    if (numeric) {
      const x = a === "" ? -Infinity : Number(a);
      const y = b === "" ? -Infinity : Number(b);
      return x - y;
    }
    return a.localeCompare(b);
  }

  function holds(value, op, bound) {
    if (op === "<") return value < bound;
    if (op === "<=") return value <= bound;
    if (op === ">") return value > bound;
    if (op === ">=") return value >= bound;
    return value === bound;
  }

  // "FAILED cust-00" keeps rows holding every word; "status:expired" looks in one column;
  // "confidence<50" compares a column's number (a row without one does not match).
  function matches(row, terms, names) {
    return terms.every(function (term) {
      const numeric = NUMERIC.exec(term);
      if (numeric && names.indexOf(numeric[1]) >= 0) {
        const text = cellText(row, names.indexOf(numeric[1]));
        return text !== "" && holds(Number(text), numeric[2], Number(numeric[3]));
      }
      const colon = term.indexOf(":");
      const index = colon > 0 ? names.indexOf(term.slice(0, colon)) : -1;
      if (index >= 0) {
        return cellText(row, index).toLowerCase().includes(term.slice(colon + 1));
      }
      return row.textContent.toLowerCase().includes(term);
    });
  }

  function terms(text) {
    // "confidence < 50" is one term: spaces around an operator are dropped first
    return text.toLowerCase().replace(/\s*(<=|>=|<|>|=)\s*/g, "$1").split(/\s+/).filter(Boolean);
  }

  function setUp(table) {
    const body = table.tBodies[0];
    const headers = table.tHead.rows[0].cells;
    const names = Array.from(headers, function (h) {
      return h.textContent.trim().toLowerCase();
    });
    const size = Number(table.getAttribute("data-page-size")) || Infinity;
    const box = document.getElementById(table.id + "-filter");
    const range = document.getElementById(table.id + "-range");
    const prev = document.getElementById(table.id + "-prev");
    const next = document.getElementById(table.id + "-next");
    let page = 0;

    function show() {
      const wanted = terms(box ? box.value : "");
      const rows = Array.from(body.rows);
      const matching = rows.filter(function (row) {
        return matches(row, wanted, names);
      });
      const pages = Math.max(1, Math.ceil(matching.length / size));
      page = Math.min(page, pages - 1);
      const start = page * size;
      const end = Math.min(start + size, matching.length);
      for (const row of rows) {
        row.hidden = true;
      }
      for (const row of matching.slice(start, end)) {
        row.hidden = false;
      }
      if (range) {
        range.textContent = matching.length
          ? (start + 1) + "\u2013" + end + " of " + matching.length
          : "0 of 0";
      }
      if (prev) {
        prev.hidden = false;
        prev.disabled = page === 0;
      }
      if (next) {
        next.hidden = false;
        next.disabled = page >= pages - 1;
      }
    }

    function sortBy(header, index) {
      const ascending = header.getAttribute("aria-sort") !== "ascending";
      for (const other of headers) {
        other.removeAttribute("aria-sort");
      }
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const numeric = header.classList.contains("n");
      const rows = Array.from(body.rows);
      rows.sort(function (r, s) {
        const order = compare(cellText(r, index), cellText(s, index), numeric);
        return ascending ? order : -order;
      });
      for (const row of rows) {
        body.appendChild(row);
      }
      page = 0;
      show();
    }

    for (let i = 0; i < headers.length; i += 1) {
      const header = headers[i];
      header.tabIndex = 0;
      header.addEventListener("click", function () {
        sortBy(header, i);
      });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(header, i);
        }
      });
    }
    if (box) {
      box.hidden = false;
      box.addEventListener("input", function () {
        page = 0;
        show();
      });
    }
    if (prev) {
      prev.addEventListener("click", function () {
        page = Math.max(0, page - 1);
        show();
      });
    }
    if (next) {
      next.addEventListener("click", function () {
        page += 1;
        show();
      });
    }
    show();
  }

  for (const table of document.querySelectorAll("table.interactive")) {
    setUp(table);
  }
})();
