"use strict";
// Sort a table by clicking a header; filter its rows by typing. Allowed by the page's CSP
// by this script's SHA-256 only. Reads cells with textContent, writes nothing but
// textContent and the hidden flag: no HTML is ever built from a value.
(function () {
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

  function sortBy(table, header, index) {
    const body = table.tBodies[0];
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    for (const other of table.tHead.rows[0].cells) {
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
  }

  // "FAILED cust-00" keeps rows holding every word; "status:expired" looks in one column.
  function matches(row, terms, names) {
    return terms.every(function (term) {
      const colon = term.indexOf(":");
      const index = colon > 0 ? names.indexOf(term.slice(0, colon)) : -1;
      if (index >= 0) {
        return cellText(row, index).toLowerCase().includes(term.slice(colon + 1));
      }
      return row.textContent.toLowerCase().includes(term);
    });
  }

  function filter(table, text, count) {
    const names = Array.from(table.tHead.rows[0].cells, function (h) {
      return h.textContent.trim().toLowerCase();
    });
    const terms = text.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      row.hidden = !matches(row, terms, names);
      shown += row.hidden ? 0 : 1;
    }
    if (count) {
      count.textContent = String(shown);
    }
  }

  for (const table of document.querySelectorAll("table.interactive")) {
    const headers = table.tHead.rows[0].cells;
    for (let i = 0; i < headers.length; i += 1) {
      const header = headers[i];
      header.tabIndex = 0;
      header.addEventListener("click", function () {
        sortBy(table, header, i);
      });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(table, header, i);
        }
      });
    }
    const box = document.getElementById(table.id + "-filter");
    const count = document.getElementById(table.id + "-shown");
    if (box) {
      box.hidden = false;
      box.addEventListener("input", function () {
        filter(table, box.value, count);
      });
    }
  }
})();
